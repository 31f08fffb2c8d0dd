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

// First chunk of the nucleus search. A vocabulary up to this size is sorted
// in one go; a larger one is sorted in doubling chunks, each found with
// nth_element, until the nucleus is complete.
constexpr int kFirstNucleusChunk = 64;

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
    return absl::InvalidArgumentError(
        absl::StrFormat("top_k must be >= 0, got %d", params.top_k));
  }
  // Written so that NaN fails too.
  if (!(params.top_p > 0 && params.top_p <= 1)) {
    return absl::InvalidArgumentError("top_p must be in (0, 1], got " +
                                      FormatNumber(params.top_p));
  }
  if (params.top_logprobs < 0 || params.top_logprobs > vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("top_logprobs must be in [0, %d], got %d", vocab_size,
                        params.top_logprobs));
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params, uint64_t seed)
    : params_(params), rng_(seed) {}

// Notes on the contract:
// - One rng_.Uniform() per call when temperature > 0, none when it is 0, so
//   the stream depends only on the seed and the number of calls.
// - Without top_k and top_p (the usual request) every token is a candidate:
//   DrawFromAll computes the weights in float with FastExp, vectorised. With
//   either limit the candidates are found by sorting and the weights are
//   computed in double. The two are the same distribution (up to FastExp's
//   ~1e-7 relative error) but not the same draws for a given seed.
// - top_p applies to the distribution already restricted to top_k and
//   renormalised (as in the usual top-k-then-top-p pipelines).
// - Every buffer is a member, so after the first call with a given vocabulary
//   size nothing is allocated unless top_logprobs > 0 (the returned vector).
// - NaN logits are treated as -inf. If no logit is finite, or one is +inf, the
//   row is degenerate: the first largest logit is returned (the draw is still
//   consumed) and the log-probabilities are not meaningful.
// - Empty logits return id -1; callers never pass them.
SampledToken Sampler::Sample(absl::Span<const float> logits) {
  SampledToken result{-1, std::numeric_limits<float>::quiet_NaN(), {}};
  const int vocab = static_cast<int>(logits.size());
  if (vocab == 0) return result;

  // Pass 1: the largest logit, after NaNs are made -inf (vectorised loops).
  const float* x = logits.data();
  if (AnyNaN(x, vocab)) {
    clean_.assign(logits.begin(), logits.end());
    for (float& v : clean_) {
      if (std::isnan(v)) v = kNegInf;
    }
    x = clean_.data();
  }
  const float max_logit = MaxOf(x, vocab);
  // The first largest logit: the greedy draw, and the degenerate rows'.
  const int argmax = static_cast<int>(std::find(x, x + vocab, max_logit) - x);
  const ByLogitDescending by_logit{x};

  // log_softmax(raw) = (x - m) - log(sum exp(x - m)), m the largest logit.
  const double m = max_logit;
  const bool degenerate = !std::isfinite(max_logit);
  auto raw_normaliser = [&] {
    double sum = 0;
    for (int i = 0; i < vocab; ++i) sum += std::exp(double{x[i]} - m);
    return sum;
  };

  int order_sorted = -1;  // -1: order_ not set up during this call
  double raw_sum = 0;
  const double temperature = params_.temperature;
  const int k =
      (params_.top_k <= 0 || params_.top_k >= vocab) ? vocab : params_.top_k;
  const bool nucleus = params_.top_p < 1;
  // 1 / temperature overflows float only for temperatures below ~3e-39.
  const float inv_temperature = static_cast<float>(1.0 / temperature);
  if (temperature == 0 || degenerate) {
    if (temperature != 0) rng_.Uniform();
    result.id = argmax;
    raw_sum = raw_normaliser();
  } else if (k == vocab && !nucleus && std::isfinite(inv_temperature)) {
    result.id = DrawFromAll(x, max_logit, inv_temperature, vocab, &raw_sum);
  } else {
    // Tempered weights exp((x - m) / T), by id. At temperature 1 they are the
    // terms of the raw normaliser; otherwise only top_k's candidates need them.
    probs_.resize(vocab);
    const double inv_t = 1.0 / temperature;
    const bool unit_temperature = temperature == 1;
    double total = 0;  // sum of every weight, when they are all computed
    if (unit_temperature) {
      for (int i = 0; i < vocab; ++i) {
        probs_[i] = std::exp(double{x[i]} - m);
        total += probs_[i];
      }
      raw_sum = total;
    } else {
      raw_sum = raw_normaliser();
      if (k == vocab) {
        for (int i = 0; i < vocab; ++i) {
          probs_[i] = std::exp((double{x[i]} - m) * inv_t);
          total += probs_[i];
        }
      }
    }

    // Candidates are ids[0, n) with total weight `mass`; the draw walks them
    // in that order, accumulating the weights exactly as `mass` was summed.
    const int* ids = nullptr;
    int n = vocab;
    double mass = total;
    if (k < vocab || nucleus) {
      order_.resize(vocab);
      std::iota(order_.begin(), order_.end(), 0);
      order_sorted = 0;
      if (k < vocab) {
        std::nth_element(order_.begin(), order_.begin() + k, order_.end(),
                         by_logit);
        mass = 0;
        for (int i = 0; i < k; ++i) {
          const int id = order_[i];
          if (!unit_temperature) {
            probs_[id] = std::exp((double{x[id]} - m) * inv_t);
          }
          mass += probs_[id];
        }
        n = k;
      }
      if (nucleus) {
        // Smallest prefix, by descending probability, reaching top_p of the
        // (top_k-restricted) mass. Sorted lazily: the nucleus is often tiny.
        const double threshold = params_.top_p * mass;
        double cum = 0;
        int chosen = 0;
        for (int chunk = kFirstNucleusChunk; chosen == 0; chunk *= 2) {
          const int end = std::min(k, order_sorted + chunk);
          if (end < k) {
            std::nth_element(order_.begin() + order_sorted,
                             order_.begin() + end, order_.begin() + k,
                             by_logit);
          }
          std::sort(order_.begin() + order_sorted, order_.begin() + end,
                    by_logit);
          for (int i = order_sorted; i < end; ++i) {
            cum += probs_[order_[i]];
            if (cum >= threshold) {
              chosen = i + 1;
              break;
            }
          }
          order_sorted = end;
          if (chosen == 0 && end == k) chosen = k;  // rounding: keep all
        }
        n = chosen;
        mass = cum;
      }
      ids = order_.data();
    }

    // Inverse CDF. Zero weights are skipped, so they are never chosen; the
    // fallback (u * mass rounding up to mass) is the last positive weight.
    const double target = rng_.Uniform() * mass;
    double acc = 0;
    int last_positive = ids ? ids[0] : argmax;
    result.id = -1;
    for (int i = 0; i < n; ++i) {
      const int id = ids ? ids[i] : i;
      const double w = probs_[id];
      if (w > 0) {
        acc += w;
        last_positive = id;
        if (target < acc) {
          result.id = id;
          break;
        }
      }
    }
    if (result.id < 0) result.id = last_positive;
  }

  // (x - m) - log(sum) rather than x - lse: exact for the largest logits
  // even when m is so large that m + log(sum) would round back to m.
  const double log_sum = std::log(raw_sum);
  result.logprob = static_cast<float>((double{x[result.id]} - m) - log_sum);

  const int top = std::min(params_.top_logprobs, vocab);
  if (top > 0) {
    if (order_sorted < 0) {
      order_.resize(vocab);
      std::iota(order_.begin(), order_.end(), 0);
      order_sorted = 0;
    }
    // order_[0, order_sorted) already holds the best ids in order and
    // everything after them ranks lower, so only the rest needs sorting.
    if (top > order_sorted) {
      std::partial_sort(order_.begin() + order_sorted, order_.begin() + top,
                        order_.end(), by_logit);
    }
    result.top.reserve(top);
    for (int i = 0; i < top; ++i) {
      const int id = order_[i];
      result.top.push_back(
          {id, static_cast<float>((double{x[id]} - m) - log_sum)});
    }
  }
  return result;
}

// One pass computes, per token, the raw term e^(x - m) of the log-softmax's
// normaliser and the tempered weight e^((x - m) / T), in kLanes partial sums
// each; then the inverse CDF by id. The walk sums the weights one by one, in
// another order than `total`, so its last sum may fall short of `total` by a
// rounding error (relative ~1e-7): a target in that gap takes the last
// positive weight, as when u * total rounds up. Weights of 0 (logits of -inf,
// or more than ~87 T below the largest) are never drawn.
int Sampler::DrawFromAll(const float* x, float m, float inv_t, int vocab,
                         double* raw_sum) {
  // Whole vectors only: the last one is padded with logits of -inf (weight
  // 0), a vector op where a scalar tail would be a chain of scalar exps.
  const int padded = RoundUpToLanes(vocab);
  weights_.resize(padded);
  float* w = weights_.data();
  float raw_lanes[kLanes] = {}, lanes[kLanes] = {};
  for (int i = 0; i < padded; i += kLanes) {
    float d[kLanes];
    if (i + kLanes <= vocab) {
      for (int j = 0; j < kLanes; ++j) d[j] = x[i + j] - m;
    } else {
      for (int j = 0; j < kLanes; ++j) d[j] = kNegInf;
      for (int j = 0; j < vocab - i; ++j) d[j] = x[i + j] - m;
    }
    for (int j = 0; j < kLanes; ++j) {
      raw_lanes[j] += FastExp(d[j]);
      w[i + j] = FastExp(d[j] * inv_t);
      lanes[j] += w[i + j];
    }
  }
  const float total = SumLanes(lanes);
  *raw_sum = SumLanes(raw_lanes);

  const float target = static_cast<float>(rng_.Uniform() * total);
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

void LogSoftmax(absl::Span<const float> logits, absl::Span<float> out) {
  const size_t n = std::min(logits.size(), out.size());
  if (n == 0) return;
  double m = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < n; ++i) m = std::max(m, double{logits[i]});
  if (!std::isfinite(m)) m = 0;  // all -inf (or +inf present): no shift
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(double{logits[i]} - m);
  const double log_sum = std::log(sum);
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<float>((double{logits[i]} - m) - log_sum);
  }
}

}  // namespace microgpt
