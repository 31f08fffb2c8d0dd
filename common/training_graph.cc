#include "common/training_graph.h"
