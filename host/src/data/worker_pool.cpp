// WorkerPool is a template (worker_pool.h); this unit keeps the header self-contained.
#include "data/worker_pool.h"
