#include "common/blas_threads.h"

#include <cblas.h>

namespace microgpt {

int BlasThreadsFor(EngineWork work, const ModelConfig& config,
                   int engine_threads) {
  if (engine_threads > 1) return 1;
  const int wide = work == EngineWork::kDecoding ? kWideDecodingEmbd : 64;
  return config.n_embd >= wide ? openblas_get_num_procs() : 1;
}

int TrainingThreadsFor(const ModelConfig& config) {
  return config.n_embd >= 64 ? 2 : 1;
}

int DecodingWorkersFor(const ModelConfig& config, int workers) {
  return config.n_embd >= 64 ? workers : 1;
}

int ConfigureBlasThreads(EngineWork work, const ModelConfig& config,
                         int engine_threads) {
  const int threads = BlasThreadsFor(work, config, engine_threads);
  openblas_set_num_threads(threads);
  return threads;
}

}  // namespace microgpt
