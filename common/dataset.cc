#include "common/dataset.h"
