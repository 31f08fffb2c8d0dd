#include "common/blas_threads.h"

#include <cblas.h>

namespace microgpt {

int BlasThreadsFor(EngineWork work, const ModelConfig& config,
                   int engine_threads) {
  if (engine_threads > 1) return 1;
  const int min_n_embd = work == EngineWork::kTraining ? 64 : 128;
  return config.n_embd >= min_n_embd ? openblas_get_num_procs() : 1;
}

int ConfigureBlasThreads(EngineWork work, const ModelConfig& config,
                         int engine_threads) {
  const int threads = BlasThreadsFor(work, config, engine_threads);
  openblas_set_num_threads(threads);
  return threads;
}

}  // namespace microgpt
