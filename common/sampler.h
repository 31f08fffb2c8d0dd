// Sampler: picks the next token from a row of logits (the seed's loop):
// probs = softmax(logits / temperature), restricted to the top_k most likely
// tokens and then to the smallest set whose mass reaches top_p, drawn with a
// per-request seeded Rng. temperature 0 is greedy argmax. The reported
// log-probabilities are the model's own: log_softmax of the raw logits, before
// temperature, top_k and top_p. Sampler::Sample (sampler.cc) lists the steps
// and what a seed promises.
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

// The one check of sampling parameters (the generator's request validation
// and its scheduler call it). INVALID_ARGUMENT naming the field and its limit:
// temperature < 0 or not finite, top_k < 0 (top_k >= vocab_size is no limit),
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
  // The steps of Sample, in order (sampler.cc). The weights, by id, are in
  // weights_; the filters zero the ones they remove.
  double RawNormaliser(const float* x, float m, int vocab) const;
  double TemperedWeights(const float* x, float m, int vocab);
  void UpdateTotal();
  void KeepTopK(const float* x, int vocab, int k);
  void KeepNucleus(const float* x, int vocab, int k);
  int Draw(int vocab);
  void SortByLogit(const float* x, int vocab, int count);

  SamplingParams params_;
  Rng rng_;
  std::vector<int> order_;      // scratch: ids ordered by logit
  std::vector<float> weights_;  // scratch: tempered weights by id, padded
  float weights_total_ = 0;     // their sum, lane by lane
  std::vector<float> clean_;    // scratch: logits with NaN as -inf
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_SAMPLER_H_
