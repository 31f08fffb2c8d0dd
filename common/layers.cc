#include "common/layers.h"
