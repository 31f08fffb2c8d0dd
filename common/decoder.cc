#include "common/decoder.h"
