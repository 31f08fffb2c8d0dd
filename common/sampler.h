// Sampler: picks the next token from a row of logits (the seed's loop):
// probs = softmax(logits / temperature), restricted to the top_k most likely
// tokens and then to the smallest set whose mass reaches top_p, drawn with a
// per-request seeded Rng. temperature 0 is greedy argmax. The reported
// log-probabilities are the model's own: log_softmax of the raw logits, before
// temperature, top_k and top_p.
#ifndef MICROGPT_COMMON_SAMPLER_H_
#define MICROGPT_COMMON_SAMPLER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/rng.h"

namespace microgpt {

struct SamplingParams {
  float temperature = 0.5f;  // 0 = greedy
  int top_k = 0;             // 0 = no limit
  float top_p = 1.0f;        // in (0, 1]; 1 = no limit
  int top_logprobs = 0;      // alternatives to report, 0..vocab_size
};

// INVALID_ARGUMENT naming the field: temperature < 0 or not finite, top_k < 0,
// top_p outside (0, 1] or NaN, top_logprobs outside [0, vocab_size].
absl::Status ValidateSamplingParams(const SamplingParams& params,
                                    int vocab_size);

struct TokenLogprob {
  int id;
  float logprob;
};

struct SampledToken {
  int id;
  float logprob;                  // log_softmax(raw logits)[id]
  std::vector<TokenLogprob> top;  // the top_logprobs most likely, descending
};

class Sampler {
 public:
  // params must be valid for the logits' vocabulary size.
  Sampler(const SamplingParams& params, uint64_t seed);

  SampledToken Sample(absl::Span<const float> logits);

  const SamplingParams& params() const { return params_; }

 private:
  // The draw when every token is a candidate (no top_k, no top_p), for
  // logits x with largest value m (finite) at 1 / temperature = inv_t
  // (finite). Returns the id; sets *raw_sum = sum e^(x - m).
  int DrawFromAll(const float* x, float m, float inv_t, int vocab,
                  double* raw_sum);

  SamplingParams params_;
  Rng rng_;
  std::vector<int> order_;      // scratch: ids sorted by logit
  std::vector<double> probs_;   // scratch: tempered weights by id
  std::vector<float> weights_;  // scratch: DrawFromAll's weights by id
  std::vector<float> clean_;    // scratch: logits with NaN as -inf
};

// log_softmax of `logits` into `out` (same size), computed in double.
void LogSoftmax(absl::Span<const float> logits, absl::Span<float> out);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_SAMPLER_H_
