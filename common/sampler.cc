#include "common/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "absl/strings/str_format.h"
#include "common/vec_math.h"

namespace microgpt {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Renders NaN as "nan" whatever its sign bit, so messages are predictable.
std::string FormatNumber(float value) {
  if (std::isnan(value)) return "nan";
  return absl::StrFormat("%g", value);
}

// A strict total order on token ids: higher logit first, lower id on ties.
// The logits must contain no NaN.
struct ByLogitDescending {
  const float* logits;
  bool operator()(int a, int b) const {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  }
};

// d = x[i, i + kLanes) - m, the lanes past `vocab` -inf (a weight of 0).
inline void CenteredLogits(const float* x, float m, int vocab, int i,
                           float* d) {
  if (i + kLanes <= vocab) {
    for (int j = 0; j < kLanes; ++j) d[j] = x[i + j] - m;
  } else {
    for (int j = 0; j < kLanes; ++j) d[j] = kNegInf;
    for (int j = 0; j < vocab - i; ++j) d[j] = x[i + j] - m;
  }
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& params,
                                    int vocab_size) {
  if (vocab_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vocab_size must be >= 1, got %d", vocab_size));
  }
  if (!std::isfinite(params.temperature) || params.temperature < 0) {
    return absl::InvalidArgumentError(
        "temperature must be a finite number >= 0, got " +
        FormatNumber(params.temperature));
  }
  if (params.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "top_k must be >= 0 (0 = no limit), got %d", params.top_k));
  }
  // Written so that NaN fails too.
  if (!(params.top_p > 0 && params.top_p <= 1)) {
    return absl::InvalidArgumentError("top_p must be in (0, 1], got " +
                                      FormatNumber(params.top_p));
  }
  if (!(params.min_p >= 0 && params.min_p <= 1)) {
    return absl::InvalidArgumentError("min_p must be in [0, 1], got " +
                                      FormatNumber(params.min_p));
  }
  std::vector<bool> biased(vocab_size, false);
  for (const auto& [id, bias] : params.logit_bias) {
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "logit_bias: token id %d is outside [0, vocab_size = %d)", id,
          vocab_size));
    }
    if (biased[id]) {
      return absl::InvalidArgumentError(
          absl::StrFormat("logit_bias: token id %d is listed twice", id));
    }
    biased[id] = true;
    if (!(bias >= -kMaxLogitBias && bias <= kMaxLogitBias)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "logit_bias: the bias of token id %d must be in [-%g, %g], got %s",
          id, kMaxLogitBias, kMaxLogitBias, FormatNumber(bias)));
    }
  }
  if (!(params.repetition_penalty > 0 &&
        params.repetition_penalty <= kMaxRepetitionPenalty)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "repetition_penalty must be in (0, %g] (1 = none), got %s",
        kMaxRepetitionPenalty, FormatNumber(params.repetition_penalty)));
  }
  for (const auto& [name, value] :
       {std::pair{"presence_penalty", params.presence_penalty},
        std::pair{"frequency_penalty", params.frequency_penalty}}) {
    if (!(value >= -kMaxPresencePenalty && value <= kMaxPresencePenalty)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s must be in [-%g, %g], got %s", name, kMaxPresencePenalty,
          kMaxPresencePenalty, FormatNumber(value)));
    }
  }
  if (params.top_logprobs < 0 || params.top_logprobs > vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("top_logprobs must be in [0, vocab_size = %d], got %d",
                        vocab_size, params.top_logprobs));
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params, uint64_t seed)
    : params_(params), rng_(seed) {}

// What the seed promises: one rng_.Uniform() per sampled token at
// temperature > 0 (none at 0), and the token is the inverse CDF at that u of
// the filtered weights walked in id order. So the same seed, model version
// and request give the same tokens, and a filter that removes nothing
// (top_k >= vocab, a top_p whose nucleus is every token) gives the tokens of
// no filter at all.
//
// The chain, one step per function below:
//   1. NaN logits count as -inf.
//   2. Shape (only when a shaping parameter or a mask is set; else
//      s = x): s[i] = x[i] + logit_bias[i]; then for every observed token
//      with count c: s / repetition_penalty if s > 0, else
//      s * repetition_penalty; s - presence_penalty; s -
//      frequency_penalty * c; then s = -inf for the tokens `allowed`
//      masks. m is the largest shaped logit.
//   3. TemperedWeights: w[i] = e^((s[i] - m) / T), and the raw normaliser
//      sum e^(x[i] - max x) that the log-probabilities use.
//   4. min_p: zero every weight below min_p (the largest weight is 1).
//   5. KeepTopK: zero every weight but the k largest shaped logits'.
//   6. KeepNucleus: zero every weight outside the smallest set, by
//      descending shaped logit, whose weight reaches top_p of what is left
//      (top_p applies to the renormalised distribution of the filters
//      before it).
//   7. Draw: the inverse CDF over the positive weights.
// Temperature 0 is the first largest shaped logit (no draw). A degenerate
// row (no finite shaped logit, or +inf) returns the first largest one too,
// after consuming its draw; its log-probabilities are not meaningful.
//
// Every buffer is a member, so after the first call with a given vocabulary
// size nothing is allocated unless top_logprobs > 0 (the returned vector).
// Empty logits return id -1; callers never pass them.
SampledToken Sampler::Sample(absl::Span<const float> logits,
                             absl::Span<const uint8_t> allowed) {
  SampledToken result{-1, std::numeric_limits<float>::quiet_NaN(), {}};
  const int vocab = static_cast<int>(logits.size());
  if (vocab == 0) return result;

  const float* x = logits.data();
  if (AnyNaN(x, vocab)) {
    clean_.assign(logits.begin(), logits.end());
    for (float& v : clean_) {
      if (std::isnan(v)) v = kNegInf;
    }
    x = clean_.data();
  }
  // The shaped logits the draw uses; x stays the raw ones the
  // log-probabilities are of.
  const float* s = x;
  if (!params_.logit_bias.empty() || !seen_.empty() || !allowed.empty()) {
    Shape(x, vocab, allowed);
    s = shaped_.data();
  }
  const float m = MaxOf(s, vocab);
  const int argmax = static_cast<int>(std::find(s, s + vocab, m) - s);
  const float raw_m = s == x ? m : MaxOf(x, vocab);

  double raw_sum;
  if (params_.temperature == 0) {
    result.id = argmax;
    raw_sum = RawNormaliser(x, raw_m, vocab);
  } else if (!std::isfinite(m)) {
    rng_.Uniform();
    result.id = argmax;
    raw_sum = RawNormaliser(x, raw_m, vocab);
  } else {
    raw_sum = TemperedWeights(s, m, vocab);
    if (s != x) raw_sum = RawNormaliser(x, raw_m, vocab);
    if (params_.min_p > 0) KeepWithinMinP(vocab);
    const int k = params_.top_k > 0 ? std::min(params_.top_k, vocab) : vocab;
    if (k < vocab) KeepTopK(s, vocab, k);
    if (params_.top_p < 1) KeepNucleus(s, vocab, k);
    result.id = Draw(vocab);
  }
  const float m_raw = raw_m;

  // (x - m) - log(sum) rather than x - lse: exact for the largest logits
  // even when m is so large that m + log(sum) would round back to m.
  const double log_sum = std::log(raw_sum);
  result.logprob = static_cast<float>((double{x[result.id]} - m_raw) - log_sum);
  const int top = std::min(params_.top_logprobs, vocab);
  if (top > 0) {
    SortByLogit(x, vocab, top);
    result.top.reserve(top);
    for (int i = 0; i < top; ++i) {
      const int id = order_[i];
      result.top.push_back(
          {id, static_cast<float>((double{x[id]} - m_raw) - log_sum)});
    }
  }
  return result;
}

SampledToken LogprobsOf(absl::Span<const float> logits, int id, int top) {
  const int vocab = static_cast<int>(logits.size());
  std::vector<float> x(logits.begin(), logits.end());
  for (float& v : x) {
    if (std::isnan(v)) v = kNegInf;
  }
  const float m = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (const float v : x) sum += std::exp(double{v} - m);
  const double log_sum = std::log(sum);
  SampledToken result{
      id, static_cast<float>((double{x[id]} - m) - log_sum), {}};
  top = std::min(top, vocab);
  if (top > 0) {
    std::vector<int> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top, order.end(),
                      ByLogitDescending{x.data()});
    for (int i = 0; i < top; ++i) {
      result.top.push_back(
          {order[i], static_cast<float>((double{x[order[i]]} - m) - log_sum)});
    }
  }
  return result;
}

void Sampler::Observe(int id) {
  if (!penalises() || id < 0) return;
  if (static_cast<size_t>(id) >= counts_.size()) counts_.resize(id + 1, 0);
  if (counts_[id]++ == 0) seen_.push_back(id);
}

void Sampler::Shape(const float* x, int vocab,
                    absl::Span<const uint8_t> allowed) {
  shaped_.assign(x, x + vocab);
  float* s = shaped_.data();
  for (const auto& [id, bias] : params_.logit_bias) s[id] += bias;
  const float penalty = params_.repetition_penalty;
  for (const int id : seen_) {
    if (id >= vocab) continue;
    float& v = s[id];
    v = v > 0 ? v / penalty : v * penalty;
    v -= params_.presence_penalty +
         params_.frequency_penalty * static_cast<float>(counts_[id]);
  }
  if (!allowed.empty()) {
    for (int i = 0; i < vocab && i < static_cast<int>(allowed.size()); ++i) {
      if (allowed[i] == 0) s[i] = kNegInf;
    }
  }
}

// Weights relative to the largest, which is 1 (TemperedWeights centres on
// the largest logit): p[i] / p_max = w[i].
void Sampler::KeepWithinMinP(int vocab) {
  float* w = weights_.data();
  for (int i = 0; i < vocab; ++i) {
    if (w[i] < params_.min_p) w[i] = 0;
  }
  UpdateTotal();
}

double Sampler::RawNormaliser(const float* x, float m, int vocab) const {
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(double{x[i]} - m);
  return sum;
}

// In float with FastExp, a whole vector at a time: the last one is padded
// with weights of 0, a vector op where a scalar tail would be a chain of
// scalar exps. Weights of 0 (logits of -inf, or more than ~87 T below the
// largest) are never drawn. A temperature so small that 1 / T overflows float
// (below ~3e-39) keeps only the largest logits, as its limit does. The
// weights' total is summed in the same pass (weights_total_).
double Sampler::TemperedWeights(const float* x, float m, int vocab) {
  const float inv_t = static_cast<float>(1.0 / params_.temperature);
  const int padded = RoundUpToLanes(vocab);
  weights_.resize(padded);
  float* w = weights_.data();
  float raw_lanes[kLanes] = {}, lanes[kLanes] = {};
  for (int i = 0; i < padded; i += kLanes) {
    float d[kLanes];  // x - m
    CenteredLogits(x, m, vocab, i, d);
    // One fused loop: split in three, GCC no longer vectorises it (2x the
    // time per sample).
    for (int j = 0; j < kLanes; ++j) {
      raw_lanes[j] += FastExp(d[j]);
      w[i + j] = FastExp(d[j] * inv_t);
      lanes[j] += w[i + j];
    }
  }
  if (!std::isfinite(inv_t)) {
    for (int i = 0; i < padded; i += kLanes) {
      float d[kLanes];
      CenteredLogits(x, m, vocab, i, d);
      for (int j = 0; j < kLanes; ++j) w[i + j] = d[j] == 0 ? 1.0f : 0.0f;
    }
    UpdateTotal();
  } else {
    weights_total_ = SumLanes(lanes);
  }
  return SumLanes(raw_lanes);
}

// What is left after a filter, summed as TemperedWeights sums (lane by
// lane), so that a filter that removes nothing leaves the total, and so the
// draw, exactly as they were.
void Sampler::UpdateTotal() {
  float lanes[kLanes] = {};
  const float* w = weights_.data();
  for (size_t i = 0; i < weights_.size(); i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += w[i + j];
  }
  weights_total_ = SumLanes(lanes);
}

// order_[0, count) holds the `count` largest logits' ids, by descending
// logit (lower id first on ties); the rest of order_ ranks lower.
void Sampler::SortByLogit(const float* x, int vocab, int count) {
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  std::partial_sort(order_.begin(), order_.begin() + count, order_.end(),
                    ByLogitDescending{x});
}

void Sampler::KeepTopK(const float* x, int vocab, int k) {
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  std::nth_element(order_.begin(), order_.begin() + k, order_.end(),
                   ByLogitDescending{x});
  for (int i = k; i < vocab; ++i) weights_[order_[i]] = 0;
  UpdateTotal();
}

// The k candidates (all of them, or top_k's) sorted by descending logit,
// then the smallest prefix whose weight reaches top_p of theirs.
void Sampler::KeepNucleus(const float* x, int vocab, int k) {
  if (k == vocab) {
    order_.resize(vocab);
    std::iota(order_.begin(), order_.end(), 0);
  }
  std::sort(order_.begin(), order_.begin() + k, ByLogitDescending{x});
  double mass = 0;
  for (int i = 0; i < k; ++i) mass += weights_[order_[i]];
  const double threshold = params_.top_p * mass;
  double cum = 0;
  int keep = k;  // rounding short of the threshold: keep all
  for (int i = 0; i < k; ++i) {
    cum += weights_[order_[i]];
    if (cum >= threshold) {
      keep = i + 1;
      break;
    }
  }
  for (int i = keep; i < k; ++i) weights_[order_[i]] = 0;
  UpdateTotal();
}

// The inverse CDF by id. The total is summed in kLanes partial sums and the
// walk one by one, so the walk may end short of the total by a rounding
// error (relative ~1e-7): a target in that gap takes the last positive
// weight, as when u * total rounds up to the total.
int Sampler::Draw(int vocab) {
  const float* w = weights_.data();
  const float target = static_cast<float>(rng_.Uniform() * weights_total_);
  float acc = 0;
  int last_positive = 0;
  for (int i = 0; i < vocab; ++i) {
    if (w[i] > 0) {
      acc += w[i];
      last_positive = i;
      if (target < acc) return i;
    }
  }
  return last_positive;
}

}  // namespace microgpt
