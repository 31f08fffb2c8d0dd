// Sampler: picks the next token from a row of logits (the seed's loop):
// the logits shaped (logit_bias, repetition / presence / frequency
// penalties, a mask of allowed tokens), probs = softmax(shaped / temperature),
// restricted to the tokens within min_p of the most likely, to the top_k most
// likely and then to the smallest set whose mass reaches top_p, drawn with a
// per-request seeded Rng. temperature 0 is greedy argmax. The reported
// log-probabilities are the model's own: log_softmax of the raw logits, before
// shaping, temperature and the filters. Sampler::Sample (sampler.cc) lists the
// steps and what a seed promises.
#ifndef MICROGPT_COMMON_SAMPLER_H_
#define MICROGPT_COMMON_SAMPLER_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/rng.h"

namespace microgpt {

struct SamplingParams {
  float temperature = 0.5f;  // 0 = greedy
  int top_k = 0;             // 0 = no limit
  float top_p = 1.0f;        // in (0, 1]; 1 = no limit
  float min_p = 0.0f;        // in [0, 1]; 0 = no limit
  // Shaping of the logits before temperature (see Sampler::Sample): added
  // per token id, then the penalties over the tokens the sampler observed.
  std::vector<std::pair<int, float>> logit_bias;  // (id, bias)
  float repetition_penalty = 1.0f;                // (0, 10]; 1 = none
  float presence_penalty = 0.0f;                  // [-2, 2]
  float frequency_penalty = 0.0f;                 // [-2, 2]
  int top_logprobs = 0;  // alternatives to report, 0..vocab_size
};

// Bounds of the shaping parameters.
inline constexpr float kMaxLogitBias = 100.0f;
inline constexpr float kMaxRepetitionPenalty = 10.0f;
inline constexpr float kMaxPresencePenalty = 2.0f;  // and frequency_penalty

// The one check of sampling parameters (the generator's request validation
// and its scheduler call it). INVALID_ARGUMENT naming the field and its limit:
// temperature < 0 or not finite, top_k < 0 (top_k >= vocab_size is no limit),
// top_p outside (0, 1] or NaN, min_p outside [0, 1], a logit_bias id outside
// [0, vocab_size) or repeated, or a bias outside [-100, 100],
// repetition_penalty outside (0, 10], presence_penalty or frequency_penalty
// outside [-2, 2], top_logprobs outside [0, vocab_size].
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

// What Sample reports for a given token instead of a drawn one (scoring
// text): log_softmax(logits)[id] of the raw logits (NaN as -inf) and the
// `top` most likely tokens' logprobs, most likely first.
SampledToken LogprobsOf(absl::Span<const float> logits, int id, int top);

class Sampler {
 public:
  // params must be valid for the logits' vocabulary size.
  Sampler(const SamplingParams& params, uint64_t seed);

  // A non-empty `allowed` (by id, 0 or 1) masks the tokens with 0: their
  // shaped logits are -inf, so the draw renormalises over the others (the
  // generator's regex constraint and min_tokens). At least one must be 1.
  SampledToken Sample(absl::Span<const float> logits,
                      absl::Span<const uint8_t> allowed = {});

  // Counts one occurrence of `id` in the sample (its prompt's tokens, then
  // each generated one), which the penalties see from the next Sample on.
  void Observe(int id);

  const SamplingParams& params() const { return params_; }

 private:
  bool penalises() const {
    return params_.repetition_penalty != 1.0f ||
           params_.presence_penalty != 0.0f ||
           params_.frequency_penalty != 0.0f;
  }
  // shaped_ = the logits after logit_bias, the penalties and the mask.
  void Shape(const float* x, int vocab, absl::Span<const uint8_t> allowed);
  // The steps of Sample, in order (sampler.cc). The weights, by id, are in
  // weights_; the filters zero the ones they remove.
  double RawNormaliser(const float* x, float m, int vocab) const;
  double TemperedWeights(const float* x, float m, int vocab);
  void UpdateTotal();
  void KeepWithinMinP(int vocab);
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
  std::vector<float> shaped_;   // scratch: the shaped logits
  // Occurrences by id (sized at the first Observe) and the ids seen, in
  // order, so that the penalties cost O(distinct tokens) per step.
  std::vector<int> counts_;
  std::vector<int> seen_;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_SAMPLER_H_
