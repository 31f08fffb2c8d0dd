#include "common/checkpoint_store.h"
