#include "common/sampler.h"
