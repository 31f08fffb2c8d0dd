// Subnormal ("denormal") floats on the threads that run model math.
//
// Intel cores take a slow path, often 100 cycles or more, for every operation
// that produces or reads a subnormal float. Training makes them in bulk:
// Adam's second moments of rarely used parameters decay towards zero by
// beta2 each step and go subnormal, and on a 2-core Xeon 79% of train (a)'s
// time went to Adam::Update on them (26k steps/s, 129k with them flushed).
// Values that small are far below what the model can resolve, so the engine
// runs with flush-to-zero (results that would be subnormal become 0) and
// denormals-are-zero (subnormal inputs count as 0), as PyTorch does with
// torch.set_flush_denormal(True). Both are bits of the thread's MXCSR: each
// thread that runs model math sets them itself, at its start.
//
//   FlushDenormalsOnThisThread();   // first thing in a model-math thread
#ifndef MICROGPT_COMMON_DENORMALS_H_
#define MICROGPT_COMMON_DENORMALS_H_

namespace microgpt {

// Sets flush-to-zero and denormals-are-zero for the calling thread (x86 with
// SSE; elsewhere a no-op).
void FlushDenormalsOnThisThread();

// Whether the calling thread flushes subnormals (false where it cannot).
bool DenormalsFlushedOnThisThread();

}  // namespace microgpt

#endif  // MICROGPT_COMMON_DENORMALS_H_
