#include "common/tokenizer.h"
