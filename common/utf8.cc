#include "common/utf8.h"
