#include "common/training_run.h"
