// How many threads OpenBLAS runs for the engine's matrix products. OpenBLAS
// defaults to one per core, but for microgpt's shapes its extra threads mostly
// wait: a product of a narrow model is done before a hand-off would pay, and
// a waiting OpenBLAS thread spins on a core that the services' own threads
// (gRPC, the scheduler's workers, TrainingGraph's shards) and, on a shared
// machine, other processes need. docs/benchmarks.md has the measurements.
#ifndef MICROGPT_COMMON_BLAS_THREADS_H_
#define MICROGPT_COMMON_BLAS_THREADS_H_

#include "common/config.h"

namespace microgpt {

enum class EngineWork { kTraining, kDecoding };

// Decoding steps of models at least this wide on a single worker give
// OpenBLAS every core (see BlasThreadsFor).
inline constexpr int kWideDecodingEmbd = 256;

// The thread count for `work` on models of `config` when the engine runs
// `engine_threads` threads of its own for it (TrainingOptions::threads, the
// generator's compute workers busy in this step): every core OpenBLAS sees
// on a single engine thread for training a wide model (n_embd >= 64,
// products of a row per position of the batch) and for decoding a very wide
// one (n_embd >= kWideDecodingEmbd: a step of one stream of config (f) reads
// 43 MB of weights, which two cores stream faster than one: decode (f) x1
// 609 -> 1.07k tokens/s in docs/benchmarks.md); otherwise one. Narrower
// decoding stays on one: its products are done before OpenBLAS's hand-off pays,
// and the helper thread's spinning costs the rest of the step its core (decode
// (d) x64 at load ~5: 8-14k tokens/s with one thread, 4-9k with two); the
// generator's own workers split a batch instead, and with two of them busy
// OpenBLAS is single-threaded.
int BlasThreadsFor(EngineWork work, const ModelConfig& config,
                   int engine_threads);

// The threads a training step of `config` runs on (TrainingOptions::threads):
// two for wide models (n_embd >= 64), whose batches TrainingGraph splits into
// shards of whole documents, one otherwise (a narrow model's step is done in
// microseconds, less than a hand-off costs). A fixed number, not the core
// count: the shards' gradients are summed in shard order, so the thread count
// decides the last bits of the weights, and a run resumed on another machine
// must compute what the uninterrupted run would have.
int TrainingThreadsFor(const ModelConfig& config);

// How many of the generator's `workers` compute threads share a decoding
// step of a model of `config`: all of them for wide models (n_embd >= 64; a
// 64-stream step of config (d) is ~1.9 ms of CPU, split in two halves), one
// for narrow ones, whose steps (~25 us for n_embd 16 x 64 streams) are
// shorter than a fork and join.
int DecodingWorkersFor(const ModelConfig& config, int workers);

// Sets OpenBLAS's thread count (process-wide) to BlasThreadsFor(...) and
// returns it.
int ConfigureBlasThreads(EngineWork work, const ModelConfig& config,
                         int engine_threads);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_BLAS_THREADS_H_
