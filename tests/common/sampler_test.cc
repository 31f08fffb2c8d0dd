#include "common/sampler.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <numeric>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "common/rng.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Counts heap allocations while g_count_allocations is set, to check that
// Sample allocates nothing once its scratch buffers are sized. Every
// unaligned form is replaced, so new and delete always pair (also under ASan);
// the aligned forms keep their defaults, which pair with each other.
namespace {
std::atomic<bool> g_count_allocations{false};
std::atomic<long> g_allocations{0};
}  // namespace

__attribute__((noinline)) void* operator new(std::size_t size) {
  if (g_count_allocations.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return operator new(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return operator new(size, std::nothrow);
}
// Not inlined: GCC would otherwise see free() of a new'd pointer and warn.
__attribute__((noinline)) void operator delete(void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete[](void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete[](void* p,
                                                 std::size_t) noexcept {
  std::free(p);
}

void operator delete(void* p, const std::nothrow_t&) noexcept {
  operator delete(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  operator delete(p);
}

namespace microgpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kNames = 27;  // the names.txt vocabulary

std::vector<float> RandomLogits(Rng& rng, int n, double scale = 3.0) {
  std::vector<float> logits(n);
  for (float& v : logits) v = static_cast<float>(scale * rng.Normal());
  return logits;
}

// Reference log_softmax in double, the textbook way.
std::vector<double> RefLogSoftmax(const std::vector<float>& logits) {
  const double m = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float v : logits) sum += std::exp(v - m);
  std::vector<double> out;
  for (float v : logits) out.push_back(v - m - std::log(sum));
  return out;
}

// Reference softmax(logits / t) in double.
std::vector<double> RefSoftmax(const std::vector<float>& logits, double t) {
  const double m = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p;
  double sum = 0;
  for (float v : logits) {
    p.push_back(std::exp((v - m) / t));
    sum += p.back();
  }
  for (double& v : p) v /= sum;
  return p;
}

// Ids by descending logit, lower id first on ties.
std::vector<int> RefOrder(const std::vector<float>& logits) {
  std::vector<int> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int a, int b) { return logits[a] > logits[b]; });
  return ids;
}

int RefArgmax(const std::vector<float>& logits) {
  return static_cast<int>(std::max_element(logits.begin(), logits.end()) -
                          logits.begin());
}

// The ids that top_k then top_p (on the renormalised top_k mass) allow.
std::set<int> RefAllowed(const std::vector<float>& logits, double t, int top_k,
                         double top_p) {
  const std::vector<double> p = RefSoftmax(logits, t);
  const std::vector<int> order = RefOrder(logits);
  const int n = static_cast<int>(logits.size());
  const int k = (top_k == 0 || top_k >= n) ? n : top_k;
  double mass = 0;
  for (int i = 0; i < k; ++i) mass += p[order[i]];
  std::set<int> allowed;
  double cum = 0;
  for (int i = 0; i < k; ++i) {
    allowed.insert(order[i]);
    cum += p[order[i]];
    if (cum >= top_p * mass) break;
  }
  return allowed;
}

std::vector<int> Histogram(Sampler& sampler, const std::vector<float>& logits,
                           int draws) {
  std::vector<int> counts(logits.size());
  for (int i = 0; i < draws; ++i) ++counts[sampler.Sample(logits).id];
  return counts;
}

double ChiSquare(const std::vector<int>& counts,
                 const std::vector<double>& probs) {
  const double n = std::accumulate(counts.begin(), counts.end(), 0.0);
  double chi2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double expected = n * probs[i];
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi2;
}

// 0.999 quantiles of the chi-square distribution by degrees of freedom.
double ChiSquareCritical999(int df) {
  static const double kCritical[] = {0,      10.828, 13.816, 16.266,
                                     18.467, 20.515, 22.458};
  return kCritical[df];
}

SamplingParams Params(float temperature, int top_k = 0, float top_p = 1.0f,
                      int top_logprobs = 0) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.top_logprobs = top_logprobs;
  return p;
}

// --- Greedy ------------------------------------------------------------------

TEST(SamplerTest, TemperatureZeroIsArgmax) {
  Rng rng(2);
  Sampler sampler(Params(0.0f), 123);
  for (int trial = 0; trial < 2000; ++trial) {
    const int n = 1 + static_cast<int>(rng.UniformInt(200));
    std::vector<float> logits = RandomLogits(rng, n);
    if (trial % 3 == 0) {
      // Coarse values force ties: the lowest id must win.
      for (float& v : logits) v = std::round(v);
    }
    EXPECT_EQ(sampler.Sample(logits).id, RefArgmax(logits))
        << "trial " << trial;
  }
}

TEST(SamplerTest, TemperatureZeroTiesGoToLowestId) {
  Sampler sampler(Params(0.0f), 5);
  EXPECT_EQ(sampler.Sample(std::vector<float>{1, 3, 2, 3, 3}).id, 1);
  EXPECT_EQ(sampler.Sample(std::vector<float>{7, 7}).id, 0);
}

TEST(SamplerTest, TemperatureZeroIgnoresSeed) {
  Rng rng(3);
  Sampler a(Params(0.0f, 3, 0.5f), 1), b(Params(0.0f, 3, 0.5f), 999);
  for (int i = 0; i < 200; ++i) {
    const std::vector<float> logits = RandomLogits(rng, kNames);
    EXPECT_EQ(a.Sample(logits).id, b.Sample(logits).id);
  }
}

// --- Determinism -------------------------------------------------------------

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDiffers) {
  for (const SamplingParams& params :
       {Params(1.0f), Params(0.5f), Params(1.5f, 5), Params(1.0f, 0, 0.8f),
        Params(2.0f, 10, 0.9f, 3)}) {
    Rng rng(4);
    std::vector<std::vector<float>> rows;
    for (int i = 0; i < 300; ++i)
      rows.push_back(RandomLogits(rng, kNames, 1.0));
    Sampler a(params, 42), b(params, 42), c(params, 43);
    std::vector<int> ta, tb, tc;
    for (const auto& row : rows) {
      ta.push_back(a.Sample(row).id);
      tb.push_back(b.Sample(row).id);
      tc.push_back(c.Sample(row).id);
    }
    EXPECT_EQ(ta, tb) << "T=" << params.temperature;
    EXPECT_NE(ta, tc) << "T=" << params.temperature;
  }
}

TEST(SamplerTest, TopLogprobsDoNotChangeTheDraws) {
  Rng rng(5);
  Sampler a(Params(1.0f, 0, 0.9f, 0), 7), b(Params(1.0f, 0, 0.9f, kNames), 7);
  for (int i = 0; i < 500; ++i) {
    const std::vector<float> logits = RandomLogits(rng, kNames, 1.0);
    EXPECT_EQ(a.Sample(logits).id, b.Sample(logits).id);
  }
}

// --- top_k / top_p -----------------------------------------------------------

TEST(SamplerTest, TopKNeverLeavesTheKLargest) {
  Rng rng(6);
  for (int vocab : {kNames, 5000}) {
    for (int k : {1, 2, 5}) {
      const std::vector<float> logits = RandomLogits(rng, vocab, 1.0);
      const std::vector<int> order = RefOrder(logits);
      const std::set<int> allowed(order.begin(), order.begin() + k);
      // A high temperature flattens the distribution, so a leak would show.
      Sampler sampler(Params(5.0f, k), 11);
      std::set<int> seen;
      for (int i = 0; i < 4000; ++i) {
        const int id = sampler.Sample(logits).id;
        ASSERT_TRUE(allowed.count(id)) << "vocab=" << vocab << " k=" << k;
        seen.insert(id);
      }
      EXPECT_EQ(seen, allowed) << "every one of the top k is reachable";
    }
  }
}

TEST(SamplerTest, TopKBoundaryTiesKeepTheLowerIds) {
  const std::vector<float> logits = {1, 3, 3, 3, 0};
  Sampler sampler(Params(1.0f, 2), 12);
  std::set<int> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(sampler.Sample(logits).id);
  EXPECT_EQ(seen, (std::set<int>{1, 2}));
}

TEST(SamplerTest, TopKAtLeastVocabIsNoLimit) {
  Rng rng(7);
  Sampler all(Params(1.0f, 0), 13), big(Params(1.0f, 1000), 13);
  for (int i = 0; i < 500; ++i) {
    const std::vector<float> logits = RandomLogits(rng, kNames);
    EXPECT_EQ(all.Sample(logits).id, big.Sample(logits).id);
  }
}

// One seeded stream whatever filters are set: a top_k or top_p that removes
// nothing draws exactly the tokens of no filter, for the same seed.
TEST(SamplerTest, AFilterThatRemovesNothingDrawsTheSameTokens) {
  Rng rng(8);
  for (const float temperature : {0.5f, 1.0f, 1.7f}) {
    Sampler none(Params(temperature), 21), none_flat(Params(temperature), 21);
    // top_k = vocab - 1 removes only a token of weight 0 (logit -inf).
    Sampler top_k(Params(temperature, kNames - 1), 21);
    // On equal logits the nucleus of top_p < 1 - 1/vocab is every token.
    Sampler top_p(Params(temperature, 0, 0.99f), 21);
    for (int i = 0; i < 300; ++i) {
      std::vector<float> logits = RandomLogits(rng, kNames);
      logits[i % kNames] = -std::numeric_limits<float>::infinity();
      const std::vector<float> flat(kNames, 0.25f);
      EXPECT_EQ(none.Sample(logits).id, top_k.Sample(logits).id)
          << "temperature " << temperature << " draw " << i;
      EXPECT_EQ(none_flat.Sample(flat).id, top_p.Sample(flat).id)
          << "temperature " << temperature << " draw " << i;
    }
  }
}

// Probabilities 0.5, 0.3, 0.1, 0.05, 0.05 at temperature 1, permuted so the
// order by id is not the order by probability.
const std::vector<float>& NucleusLogits() {
  static const std::vector<float> logits = {std::log(0.05f), std::log(0.3f),
                                            std::log(0.05f), std::log(0.5f),
                                            std::log(0.1f)};
  return logits;
}

TEST(SamplerTest, TopPNeverLeavesTheNucleus) {
  struct Case {
    float top_p;
    std::set<int> nucleus;
  };
  for (const Case& c : {Case{0.4f, {3}}, Case{0.75f, {3, 1}},
                        Case{0.85f, {3, 1, 4}}, Case{0.95f, {3, 1, 4, 0}}}) {
    Sampler sampler(Params(1.0f, 0, c.top_p), 14);
    std::set<int> seen;
    for (int i = 0; i < 5000; ++i) {
      const int id = sampler.Sample(NucleusLogits()).id;
      ASSERT_TRUE(c.nucleus.count(id)) << "top_p=" << c.top_p << " id=" << id;
      seen.insert(id);
    }
    EXPECT_EQ(seen, c.nucleus) << "top_p=" << c.top_p;
  }
}

TEST(SamplerTest, TinyTopPKeepsTheMostLikelyToken) {
  Rng rng(8);
  Sampler sampler(Params(3.0f, 0, 1e-6f), 15);
  for (int i = 0; i < 500; ++i) {
    const std::vector<float> logits = RandomLogits(rng, kNames);
    EXPECT_EQ(sampler.Sample(logits).id, RefArgmax(logits));
  }
}

TEST(SamplerTest, TopPAppliesToTheRenormalisedTopK) {
  // top_k=3 leaves 0.5, 0.3, 0.1, renormalised 0.556, 0.333, 0.111: top_p
  // 0.85 is reached after two tokens. On the unrenormalised mass (0.5, 0.8,
  // 0.9) it would take three.
  Sampler sampler(Params(1.0f, 3, 0.85f), 16);
  std::set<int> seen;
  for (int i = 0; i < 5000; ++i)
    seen.insert(sampler.Sample(NucleusLogits()).id);
  EXPECT_EQ(seen, (std::set<int>{3, 1}));
}

TEST(SamplerTest, TopPBoundaryIsInclusive) {
  // Equal logits give weights of exactly 1, so the cumulative mass hits
  // top_p exactly: "reaches" means the boundary token closes the nucleus.
  const std::vector<float> logits(4, 0.0f);
  for (const auto& [top_p, nucleus] :
       {std::pair<float, std::set<int>>{0.5f, {0, 1}},
        std::pair<float, std::set<int>>{0.75f, {0, 1, 2}},
        std::pair<float, std::set<int>>{0.25f, {0}}}) {
    Sampler sampler(Params(1.0f, 0, top_p), 30);
    std::set<int> seen;
    for (int i = 0; i < 2000; ++i) seen.insert(sampler.Sample(logits).id);
    EXPECT_EQ(seen, nucleus) << "top_p=" << top_p;
  }
}

TEST(SamplerTest, LargeNucleusIsWholeAcrossSortedChunks) {
  // 1000 equal logits and top_p 0.5: the nucleus is exactly ids 0..499 (ties
  // by lower id), far more than one sorted chunk, and every one is drawn.
  const std::vector<float> logits(1000, 1.0f);
  Sampler sampler(Params(1.0f, 0, 0.5f), 31);
  std::set<int> seen;
  for (int i = 0; i < 20000; ++i) {
    const int id = sampler.Sample(logits).id;
    ASSERT_LT(id, 500);
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 500u);
}

TEST(SamplerTest, ChiSquareOnLargeVocabularyNucleus) {
  // 2000 tokens, top_p 0.9: the nucleus spans several sorted chunks. The
  // nucleus ranks are grouped into 6 contiguous bins of similar mass.
  constexpr int kVocab = 2000;
  constexpr int kDraws = 10000;
  constexpr int kBins = 6;
  Rng rng(32);
  const std::vector<float> logits = RandomLogits(rng, kVocab, 2.0);
  const std::vector<double> p = RefSoftmax(logits, 1.0);
  const std::vector<int> order = RefOrder(logits);
  const std::set<int> allowed = RefAllowed(logits, 1.0, 0, 0.9);
  const int nucleus = static_cast<int>(allowed.size());
  ASSERT_GT(nucleus, 200);
  double mass = 0;
  for (int id : allowed) mass += p[id];
  std::vector<int> bin_of(kVocab, -1);
  std::vector<double> bin_prob(kBins);
  double cum = 0;
  for (int r = 0; r < nucleus; ++r) {
    const int id = order[r];
    const int bin = std::min(kBins - 1, static_cast<int>(cum / mass * kBins));
    bin_of[id] = bin;
    bin_prob[bin] += p[id] / mass;
    cum += p[id];
  }
  Sampler sampler(Params(1.0f, 0, 0.9f), 33);
  std::vector<int> counts(kBins);
  for (int i = 0; i < kDraws; ++i) {
    const int id = sampler.Sample(logits).id;
    ASSERT_GE(bin_of[id], 0) << "outside the nucleus: " << id;
    ++counts[bin_of[id]];
  }
  EXPECT_LT(ChiSquare(counts, bin_prob), ChiSquareCritical999(kBins - 1));
}

TEST(SamplerTest, LargeVocabularyMatchesReferenceFilter) {
  // Large enough that the nucleus is found over several sorted chunks.
  Rng rng(9);
  for (const SamplingParams& params :
       {Params(1.0f, 0, 0.9f), Params(0.7f, 0, 0.99f), Params(1.0f, 700, 0.95f),
        Params(2.0f, 50), Params(1.0f, 3000, 0.5f)}) {
    const std::vector<float> logits = RandomLogits(rng, 20000, 2.0);
    const std::set<int> allowed =
        RefAllowed(logits, params.temperature, params.top_k, params.top_p);
    Sampler sampler(params, 17);
    for (int i = 0; i < 300; ++i) {
      ASSERT_TRUE(allowed.count(sampler.Sample(logits).id))
          << "T=" << params.temperature << " top_k=" << params.top_k
          << " top_p=" << params.top_p << " nucleus=" << allowed.size();
    }
  }
}

// --- Log-probabilities -------------------------------------------------------

TEST(SamplerTest, LogprobIsLogSoftmaxOfRawLogits) {
  Rng rng(10);
  for (const SamplingParams& params :
       {Params(0.0f), Params(0.3f), Params(1.0f), Params(3.0f), Params(0.5f, 3),
        Params(2.0f, 0, 0.5f), Params(0.0f, 2, 0.3f), Params(1.0f, 5, 0.9f)}) {
    Sampler sampler(params, 18);
    for (int i = 0; i < 200; ++i) {
      const std::vector<float> logits = RandomLogits(rng, kNames);
      const std::vector<double> ref = RefLogSoftmax(logits);
      const SampledToken token = sampler.Sample(logits);
      ASSERT_GE(token.id, 0);
      ASSERT_LT(token.id, kNames);
      EXPECT_NEAR(token.logprob, ref[token.id], 1e-5)
          << "T=" << params.temperature << " top_k=" << params.top_k
          << " top_p=" << params.top_p;
    }
  }
}

TEST(SamplerTest, TopLogprobsSortedCorrectAndOfRequestedLength) {
  Rng rng(11);
  for (int top : {0, 1, 5, kNames}) {
    for (const SamplingParams& base :
         {Params(0.0f), Params(0.5f), Params(2.0f, 4), Params(1.0f, 0, 0.6f)}) {
      SamplingParams params = base;
      params.top_logprobs = top;
      Sampler sampler(params, 19);
      for (int i = 0; i < 100; ++i) {
        std::vector<float> logits = RandomLogits(rng, kNames);
        if (i % 2 == 0) {
          for (float& v : logits) v = std::round(v);  // ties
        }
        const std::vector<double> ref = RefLogSoftmax(logits);
        const std::vector<int> order = RefOrder(logits);
        const SampledToken token = sampler.Sample(logits);
        ASSERT_EQ(static_cast<int>(token.top.size()), top);
        for (int j = 0; j < top; ++j) {
          EXPECT_EQ(token.top[j].id, order[j]) << "rank " << j;
          EXPECT_NEAR(token.top[j].logprob, ref[order[j]], 1e-5);
          if (j > 0) {
            EXPECT_GE(token.top[j - 1].logprob, token.top[j].logprob);
          }
        }
      }
    }
  }
}

TEST(SamplerTest, TopLogprobsOnLargeVocabulary) {
  // Past one sorted chunk, and after top_k's partition, the alternatives must
  // still be the exact top of the whole vocabulary.
  constexpr int kVocab = 500;
  Rng rng(34);
  for (int top : {1, 10, 100, kVocab}) {
    for (const SamplingParams& base :
         {Params(0.0f), Params(1.0f), Params(0.7f, 10), Params(1.0f, 0, 0.5f),
          Params(1.0f, 0, 0.95f), Params(1.5f, 80, 0.9f)}) {
      SamplingParams params = base;
      params.top_logprobs = top;
      Sampler sampler(params, 35);
      for (int i = 0; i < 20; ++i) {
        std::vector<float> logits = RandomLogits(rng, kVocab, 1.0);
        if (i % 2 == 0) {
          for (float& v : logits) v = std::round(4 * v) / 4;  // ties
        }
        const std::vector<double> ref = RefLogSoftmax(logits);
        const std::vector<int> order = RefOrder(logits);
        const SampledToken token = sampler.Sample(logits);
        ASSERT_EQ(static_cast<int>(token.top.size()), top);
        for (int j = 0; j < top; ++j) {
          ASSERT_EQ(token.top[j].id, order[j])
              << "rank " << j << " top=" << top << " T=" << params.temperature
              << " top_k=" << params.top_k << " top_p=" << params.top_p;
          EXPECT_NEAR(token.top[j].logprob, ref[order[j]], 1e-5);
        }
      }
    }
  }
}

TEST(SamplerTest, TopLogprobsTiesByLowerId) {
  Sampler sampler(Params(1.0f, 0, 1.0f, 4), 20);
  const SampledToken token =
      sampler.Sample(std::vector<float>{0.0f, 2.0f, 1.0f, 2.0f, 1.0f});
  std::vector<int> ids;
  for (const TokenLogprob& t : token.top) ids.push_back(t.id);
  EXPECT_THAT(ids, ElementsAre(1, 3, 2, 4));
}

TEST(SamplerTest, StableForExtremeLogitsAndTemperatures) {
  const std::vector<float> logits = {1e4f, -1e4f, 0.0f, 9999.0f};
  for (float t : {1e-30f, 0.01f, 1.0f, 1e30f}) {
    Sampler sampler(Params(t, 0, 1.0f, 4), 21);
    for (int i = 0; i < 100; ++i) {
      const SampledToken token = sampler.Sample(logits);
      ASSERT_GE(token.id, 0);
      ASSERT_LT(token.id, 4);
      EXPECT_FALSE(std::isnan(token.logprob)) << "T=" << t;
      for (const TokenLogprob& alt : token.top)
        EXPECT_FALSE(std::isnan(alt.logprob));
      if (t <= 0.01f) {
        EXPECT_EQ(token.id, 0);
      }
    }
  }
}

TEST(SamplerTest, MaskedAndNanLogitsAreNeverDrawn) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> logits = {-inf, 0.0f, nan, 0.5f, -inf, nan};
  for (const SamplingParams& params :
       {Params(1.0f), Params(5.0f, 4), Params(1.0f, 0, 0.99f),
        Params(0.0f, 0, 1.0f, 6)}) {
    Sampler sampler(params, 22);
    for (int i = 0; i < 2000; ++i) {
      const SampledToken token = sampler.Sample(logits);
      ASSERT_TRUE(token.id == 1 || token.id == 3) << token.id;
      EXPECT_TRUE(std::isfinite(token.logprob));
    }
  }
}

// --- Distribution ------------------------------------------------------------

const std::vector<float> kChiLogits = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f};

TEST(SamplerTest, ChiSquareMatchesSoftmaxAtTemperature) {
  constexpr int kDraws = 20000;
  const int df = static_cast<int>(kChiLogits.size()) - 1;
  struct Case {
    float temperature;
    float wrong_temperature;  // a different temperature the counts must reject
  };
  for (const Case& c : {Case{0.5f, 1.0f}, Case{1.0f, 2.0f}, Case{2.0f, 1.0f}}) {
    Sampler sampler(Params(c.temperature), 2024);
    const std::vector<int> counts = Histogram(sampler, kChiLogits, kDraws);
    const double fit = ChiSquare(counts, RefSoftmax(kChiLogits, c.temperature));
    const double misfit =
        ChiSquare(counts, RefSoftmax(kChiLogits, c.wrong_temperature));
    EXPECT_LT(fit, ChiSquareCritical999(df)) << "T=" << c.temperature;
    // The test can tell temperatures apart: the same counts are wildly off
    // the softmax at another temperature.
    EXPECT_GT(misfit, 50 * ChiSquareCritical999(df))
        << "T=" << c.temperature << " vs " << c.wrong_temperature;
  }
}

TEST(SamplerTest, ChiSquareOnTheNamesVocabulary) {
  // 27 tokens, no top_k or top_p: the float path, whose weights are summed in
  // 8 lanes plus a tail of 3. The tokens are grouped by rank into 6 bins of
  // similar mass, so that every expected count is large.
  constexpr int kDraws = 20000;
  constexpr int kBins = 6;
  Rng rng(36);
  const std::vector<float> logits = RandomLogits(rng, kNames, 0.8);
  for (float temperature : {0.5f, 1.0f, 1.7f}) {
    const std::vector<double> p = RefSoftmax(logits, temperature);
    const std::vector<int> order = RefOrder(logits);
    std::vector<int> bin_of(kNames);
    std::vector<double> bin_prob(kBins);
    double cum = 0;
    for (int id : order) {
      bin_of[id] = std::min(kBins - 1, static_cast<int>(cum * kBins));
      bin_prob[bin_of[id]] += p[id];
      cum += p[id];
    }
    Sampler sampler(Params(temperature), 37);
    std::vector<int> counts(kBins);
    for (int i = 0; i < kDraws; ++i)
      ++counts[bin_of[sampler.Sample(logits).id]];
    // Bins that the ranks leave empty carry no information.
    std::vector<int> kept_counts;
    std::vector<double> kept_probs;
    for (int b = 0; b < kBins; ++b) {
      if (bin_prob[b] > 0) {
        kept_counts.push_back(counts[b]);
        kept_probs.push_back(bin_prob[b]);
      }
    }
    const int df = static_cast<int>(kept_counts.size()) - 1;
    ASSERT_GE(df, 3) << "T=" << temperature;
    EXPECT_LT(ChiSquare(kept_counts, kept_probs), ChiSquareCritical999(df))
        << "T=" << temperature;
  }
}

TEST(SamplerTest, TemperatureTooSmallForFloatStillSamples) {
  // 1 / 1e-39 overflows float: the double path takes it, where every token
  // but the largest has weight e^-huge = 0.
  Rng rng(38);
  Sampler sampler(Params(1e-39f), 39);
  for (int i = 0; i < 100; ++i) {
    const std::vector<float> logits = RandomLogits(rng, kNames);
    const SampledToken token = sampler.Sample(logits);
    EXPECT_EQ(token.id, RefArgmax(logits));
    EXPECT_NEAR(token.logprob, RefLogSoftmax(logits)[token.id], 1e-5);
  }
}

TEST(SamplerTest, ChiSquareMatchesRenormalisedTopKTopP) {
  constexpr int kDraws = 20000;
  struct Case {
    float temperature;
    int top_k;
    float top_p;
    std::set<int> kept;  // worked out by hand, checked against RefAllowed
  };
  // At T=1 the sorted probabilities are 0.538, 0.198, 0.120, 0.073, ...:
  // top_k=4 renormalises them to 0.579, 0.213, 0.129, 0.078, and top_p=0.8
  // of that is reached after three tokens.
  for (const Case& c :
       {Case{1.0f, 4, 0.8f, {4, 0, 1}}, Case{0.5f, 3, 1.0f, {4, 0, 1}},
        Case{2.0f, 4, 1.0f, {4, 0, 1, 2}},
        Case{2.0f, 0, 0.75f, {4, 0, 1, 2}}}) {
    const std::set<int> allowed =
        RefAllowed(kChiLogits, c.temperature, c.top_k, c.top_p);
    ASSERT_EQ(allowed, c.kept) << "T=" << c.temperature;
    const std::vector<double> expected = RefSoftmax(kChiLogits, c.temperature);
    double mass = 0;
    for (int id : allowed) mass += expected[id];
    Sampler sampler(Params(c.temperature, c.top_k, c.top_p), 2025);
    const std::vector<int> counts = Histogram(sampler, kChiLogits, kDraws);
    std::vector<int> kept_counts;
    std::vector<double> kept_probs;
    for (int id = 0; id < static_cast<int>(kChiLogits.size()); ++id) {
      if (allowed.count(id)) {
        kept_counts.push_back(counts[id]);
        kept_probs.push_back(expected[id] / mass);
      } else {
        EXPECT_EQ(counts[id], 0) << "id " << id;
      }
    }
    const int df = static_cast<int>(allowed.size()) - 1;
    EXPECT_LT(ChiSquare(kept_counts, kept_probs), ChiSquareCritical999(df))
        << "T=" << c.temperature << " top_k=" << c.top_k
        << " top_p=" << c.top_p;
  }
}

// --- Allocation --------------------------------------------------------------

TEST(SamplerTest, NoAllocationAfterTheFirstCall) {
  Rng rng(12);
  for (const SamplingParams& params :
       {Params(0.0f), Params(0.5f), Params(1.0f, 5), Params(1.0f, 0, 0.9f),
        Params(0.8f, 10, 0.7f)}) {
    for (int vocab : {kNames, 3000}) {
      std::vector<std::vector<float>> rows;
      for (int i = 0; i < 50; ++i) rows.push_back(RandomLogits(rng, vocab));
      Sampler sampler(params, 23);
      sampler.Sample(rows[0]);  // sizes the scratch buffers
      g_allocations = 0;
      g_count_allocations = true;
      int sum = 0;
      for (const auto& row : rows) sum += sampler.Sample(row).id;
      g_count_allocations = false;
      EXPECT_EQ(g_allocations.load(), 0)
          << "T=" << params.temperature << " top_k=" << params.top_k
          << " top_p=" << params.top_p << " vocab=" << vocab;
      EXPECT_GE(sum, 0);
    }
  }
}

// --- Shaping: logit_bias, penalties, min_p, a mask ------------------------

// The shaping of SamplingParams written out independently, in double: the
// bias, then per observed token CTRL's repetition penalty, presence and
// frequency.
std::vector<double> RefShaped(const std::vector<float>& logits,
                              const SamplingParams& params,
                              const std::vector<int>& counts) {
  std::vector<double> s(logits.begin(), logits.end());
  for (const auto& [id, bias] : params.logit_bias) s[id] += bias;
  for (size_t i = 0; i < s.size(); ++i) {
    if (counts[i] == 0) continue;
    s[i] = s[i] > 0 ? s[i] / params.repetition_penalty
                    : s[i] * params.repetition_penalty;
    s[i] -= params.presence_penalty + params.frequency_penalty * counts[i];
  }
  return s;
}

TEST(SamplerShapingTest, GreedyPicksTheArgmaxOfTheShapedLogits) {
  Rng rng(11);
  int differs_from_raw = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const std::vector<float> logits = RandomLogits(rng, kNames, 2.0);
    SamplingParams params = Params(0.0f);
    params.repetition_penalty = 1.0f + 2.0f * static_cast<float>(rng.Uniform());
    params.presence_penalty = 2.0f * static_cast<float>(rng.Uniform()) - 1.0f;
    params.frequency_penalty = 2.0f * static_cast<float>(rng.Uniform()) - 1.0f;
    params.logit_bias = {{static_cast<int>(rng.Uniform() * kNames), 3.0f}};
    Sampler sampler(params, 1);
    std::vector<int> counts(kNames, 0);
    for (int k = 0; k < 6; ++k) {
      const int id = static_cast<int>(rng.Uniform() * kNames);
      ++counts[id];
      sampler.Observe(id);
    }
    const std::vector<double> shaped = RefShaped(logits, params, counts);
    const int expected = static_cast<int>(
        std::max_element(shaped.begin(), shaped.end()) - shaped.begin());
    const SampledToken token = sampler.Sample(logits);
    EXPECT_EQ(token.id, expected) << "trial " << trial;
    // The logprob is the raw logits' log_softmax, shaping or not.
    EXPECT_NEAR(token.logprob, RefLogSoftmax(logits)[token.id], 1e-5);
    differs_from_raw +=
        token.id !=
        static_cast<int>(std::max_element(logits.begin(), logits.end()) -
                         logits.begin());
  }
  EXPECT_GT(differs_from_raw, 30);  // the shaping did change choices
}

TEST(SamplerShapingTest, DrawsFollowTheShapedTemperedDistribution) {
  Rng rng(5);
  const std::vector<float> logits = RandomLogits(rng, 8, 1.0);
  SamplingParams params = Params(0.8f);
  params.repetition_penalty = 1.5f;
  params.presence_penalty = 0.3f;
  params.frequency_penalty = 0.2f;
  params.logit_bias = {{2, 1.0f}, {5, -2.0f}};
  std::vector<int> counts(8, 0);
  counts[1] = 2;
  counts[3] = 1;
  const std::vector<double> shaped = RefShaped(logits, params, counts);
  std::vector<float> shaped_f(shaped.begin(), shaped.end());
  const std::vector<double> expected = RefSoftmax(shaped_f, 0.8);
  Sampler sampler(params, 9);
  for (int id : {1, 1, 3}) sampler.Observe(id);
  std::vector<int> seen(8, 0);
  const int draws = 40000;
  for (int i = 0; i < draws; ++i) ++seen[sampler.Sample(logits).id];
  for (int id = 0; id < 8; ++id) {
    EXPECT_NEAR(seen[id] / static_cast<double>(draws), expected[id], 0.01)
        << "id " << id;
  }
}

TEST(SamplerShapingTest, MinPDropsTokensBelowItsShareOfTheMostLikely) {
  Rng rng(3);
  for (int trial = 0; trial < 50; ++trial) {
    const std::vector<float> logits = RandomLogits(rng, kNames, 2.0);
    SamplingParams params = Params(0.7f);
    params.min_p = 0.2f;
    const std::vector<double> p = RefSoftmax(logits, 0.7);
    const double p_max = *std::max_element(p.begin(), p.end());
    Sampler sampler(params, trial);
    for (int i = 0; i < 200; ++i) {
      const int id = sampler.Sample(logits).id;
      ASSERT_GE(p[id], 0.2 * p_max * (1 - 1e-5)) << "trial " << trial;
    }
  }
}

TEST(SamplerShapingTest, AForbiddenTokenIsNeverDrawnAndNothingElseChanges) {
  Rng rng(8);
  std::vector<float> logits = RandomLogits(rng, kNames, 1.0);
  logits[kNames - 1] = 10.0f;  // the likeliest by far
  Sampler forbidding(Params(1.0f), 4), plain(Params(1.0f), 4);
  for (int i = 0; i < 500; ++i) {
    std::vector<uint8_t> allowed(kNames, 1);
    allowed[kNames - 1] = 0;
    const SampledToken token = forbidding.Sample(logits, allowed);
    ASSERT_NE(token.id, kNames - 1);
    EXPECT_NEAR(token.logprob, RefLogSoftmax(logits)[token.id], 1e-5);
  }
  // Without shaping the draws are those of a sampler without the feature.
  Sampler again(Params(1.0f), 4);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(again.Sample(logits).id, plain.Sample(logits).id);
  }
}

TEST(SamplerShapingTest, NeutralPenaltiesObserveNothing) {
  Rng rng(2);
  const std::vector<float> logits = RandomLogits(rng, kNames);
  Sampler observed(Params(1.0f), 6), fresh(Params(1.0f), 6);
  for (int id = 0; id < kNames; ++id) observed.Observe(id);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(observed.Sample(logits).id, fresh.Sample(logits).id);
  }
}

// --- Validation --------------------------------------------------------------

void ExpectInvalid(const SamplingParams& params, int vocab,
                   const std::string& substring) {
  const absl::Status status = ValidateSamplingParams(params, vocab);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << substring;
  EXPECT_THAT(std::string(status.message()), HasSubstr(substring));
}

TEST(ValidateSamplingParamsTest, AcceptsValidParams) {
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams(), kNames).ok());
  EXPECT_TRUE(ValidateSamplingParams(Params(0.0f), kNames).ok());
  EXPECT_TRUE(
      ValidateSamplingParams(Params(100.0f, 1000, 1.0f, kNames), kNames).ok());
  EXPECT_TRUE(ValidateSamplingParams(Params(1.0f, 0, 1e-6f), kNames).ok());
}

TEST(ValidateSamplingParamsTest, RejectsEachBadField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  ExpectInvalid(Params(nan), kNames,
                "temperature must be a finite number >= 0, got nan");
  ExpectInvalid(Params(-nan), kNames,
                "temperature must be a finite number >= 0, got nan");
  ExpectInvalid(Params(inf), kNames,
                "temperature must be a finite number >= 0, got inf");
  ExpectInvalid(Params(-0.5f), kNames,
                "temperature must be a finite number >= 0, got -0.5");
  ExpectInvalid(Params(1.0f, -1), kNames,
                "top_k must be >= 0 (0 = no limit), got -1");
  ExpectInvalid(Params(1.0f, 0, 0.0f), kNames,
                "top_p must be in (0, 1], got 0");
  ExpectInvalid(Params(1.0f, 0, 1.5f), kNames,
                "top_p must be in (0, 1], got 1.5");
  ExpectInvalid(Params(1.0f, 0, -0.1f), kNames, "top_p must be in (0, 1]");
  ExpectInvalid(Params(1.0f, 0, nan), kNames,
                "top_p must be in (0, 1], got nan");
  ExpectInvalid(Params(1.0f, 0, 1.0f, kNames + 1), kNames,
                "top_logprobs must be in [0, vocab_size = 27], got 28");
  ExpectInvalid(Params(1.0f, 0, 1.0f, -1), kNames,
                "top_logprobs must be in [0, vocab_size = 27], got -1");
  SamplingParams params;
  params.min_p = 1.5f;
  ExpectInvalid(params, kNames, "min_p must be in [0, 1], got 1.5");
  params.min_p = nan;
  ExpectInvalid(params, kNames, "min_p must be in [0, 1], got nan");
  params = SamplingParams();
  params.repetition_penalty = 0.0f;
  ExpectInvalid(params, kNames, "repetition_penalty must be in (0, 10]");
  params.repetition_penalty = 11.0f;
  ExpectInvalid(params, kNames, "repetition_penalty must be in (0, 10]");
  params = SamplingParams();
  params.presence_penalty = 2.5f;
  ExpectInvalid(params, kNames, "presence_penalty must be in [-2, 2], got 2.5");
  params = SamplingParams();
  params.frequency_penalty = -inf;
  ExpectInvalid(params, kNames, "frequency_penalty must be in [-2, 2]");
  params = SamplingParams();
  params.logit_bias = {{kNames, 1.0f}};
  ExpectInvalid(params, kNames,
                "logit_bias: token id 27 is outside [0, vocab_size = 27)");
  params.logit_bias = {{3, 1.0f}, {3, 2.0f}};
  ExpectInvalid(params, kNames, "logit_bias: token id 3 is listed twice");
  params.logit_bias = {{3, 101.0f}};
  ExpectInvalid(params, kNames,
                "logit_bias: the bias of token id 3 must be in [-100, 100]");
  params.logit_bias = {{3, nan}};
  ExpectInvalid(params, kNames, "got nan");
}

}  // namespace
}  // namespace microgpt
