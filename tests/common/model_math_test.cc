// The model math against docs/model.md: TrainingGraph's forward against a
// literal double-precision transcription of the spec, its backward against
// central finite differences of that transcription for every parameter tensor,
// independence of the documents packed into a batch, and the KV-cache decoder
// against the training forward.
#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/decoder.h"
#include "common/model.h"
#include "common/parameters.h"
#include "common/rng.h"
#include "common/training_graph.h"
#include "common/vec_math.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microgpt {
namespace {

using Doc = std::vector<int>;

// ---------------------------------------------------------------------------
// docs/model.md, literally, in double: one token at a time with a KV cache,
// weights looked up by name. Independent of layers.h.
class Reference {
 public:
  Reference(const ModelConfig& config, const std::vector<double>& params)
      : c_(config), layout_(config), p_(params) {}

  // Logits [n][V] of the first n = min(block_size, len - 1) positions.
  std::vector<std::vector<double>> Logits(const Doc& doc) const {
    const int C = c_.n_embd, NH = c_.n_head, HD = c_.head_dim();
    const int L = c_.n_layer;
    const int n = std::min(c_.block_size, static_cast<int>(doc.size()) - 1);
    std::vector<std::vector<std::vector<double>>> keys(L), values(L);
    std::vector<std::vector<double>> out;
    for (int t = 0; t < n; ++t) {
      std::vector<double> x(C);
      for (int i = 0; i < C; ++i) {
        x[i] = W("wte")[doc[t] * C + i] + W("wpe")[t * C + i];
      }
      x = RmsNorm(x);
      for (int l = 0; l < L; ++l) {
        const std::string p = "layer" + std::to_string(l) + ".";
        const std::vector<double> a = RmsNorm(x);
        const std::vector<double> q = Linear(p + "attn_wq", a);
        keys[l].push_back(Linear(p + "attn_wk", a));
        values[l].push_back(Linear(p + "attn_wv", a));
        std::vector<double> heads(C);
        for (int h = 0; h < NH; ++h) {
          std::vector<double> w(t + 1);
          double maxv = -1e300, sum = 0;
          for (int s = 0; s <= t; ++s) {
            double dot = 0;
            for (int d = 0; d < HD; ++d) {
              dot += q[h * HD + d] * keys[l][s][h * HD + d];
            }
            w[s] = dot / std::sqrt(static_cast<double>(HD));
            maxv = std::max(maxv, w[s]);
          }
          for (double& v : w) sum += (v = std::exp(v - maxv));
          for (int s = 0; s <= t; ++s) {
            for (int d = 0; d < HD; ++d) {
              heads[h * HD + d] += w[s] / sum * values[l][s][h * HD + d];
            }
          }
        }
        const std::vector<double> o = Linear(p + "attn_wo", heads);
        for (int i = 0; i < C; ++i) x[i] += o[i];
        std::vector<double> hid = Linear(p + "mlp_fc1", RmsNorm(x));
        for (double& v : hid) v = std::max(v, 0.0);
        const std::vector<double> m = Linear(p + "mlp_fc2", hid);
        for (int i = 0; i < C; ++i) x[i] += m[i];
      }
      out.push_back(Linear("lm_head", x));
    }
    return out;
  }

  // Mean cross-entropy over all real targets of the batch.
  double Loss(const std::vector<Doc>& docs) const {
    double sum = 0;
    int64_t count = 0;
    for (const Doc& doc : docs) {
      const std::vector<std::vector<double>> logits = Logits(doc);
      for (size_t t = 0; t < logits.size(); ++t) {
        double maxv = -1e300, z = 0;
        for (double v : logits[t]) maxv = std::max(maxv, v);
        for (double v : logits[t]) z += std::exp(v - maxv);
        sum += std::log(z) + maxv - logits[t][doc[t + 1]];
        ++count;
      }
    }
    return sum / count;
  }

  std::vector<double>& params() { return p_; }

 private:
  const double* W(const std::string& name) const {
    return p_.data() + layout_.Find(name)->offset;
  }
  std::vector<double> Linear(const std::string& name,
                             const std::vector<double>& x) const {
    const TensorSpec& t = *layout_.Find(name);
    const double* w = p_.data() + t.offset;
    std::vector<double> y(t.rows);
    for (int r = 0; r < t.rows; ++r) {
      for (int k = 0; k < t.cols; ++k) y[r] += w[r * t.cols + k] * x[k];
    }
    return y;
  }
  static std::vector<double> RmsNorm(std::vector<double> x) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double r = 1.0 / std::sqrt(ss / x.size() + 1e-5);
    for (double& v : x) v *= r;
    return x;
  }

  ModelConfig c_;
  ParameterLayout layout_;
  std::vector<double> p_;
};

// ---------------------------------------------------------------------------
// Helpers.

// Weights from N(0, std^2), deterministic in seed.
std::vector<float> RandomParams(const ModelConfig& config, uint64_t seed,
                                float std) {
  std::vector<float> p(ParameterLayout(config).total_size());
  InitializeParameters(seed, p);
  for (float& v : p) v *= std / 0.08f;
  return p;
}

std::vector<const Doc*> Pointers(const std::vector<Doc>& docs) {
  std::vector<const Doc*> out;
  for (const Doc& d : docs) out.push_back(&d);
  return out;
}

// A random document of `len` tokens: BOS, len - 2 characters, BOS.
Doc RandomDoc(int vocab, int len, uint64_t seed) {
  Rng rng(seed);
  Doc d(len, vocab - 1);
  for (int i = 1; i + 1 < len; ++i) {
    d[i] = static_cast<int>(rng.UniformInt(vocab - 1));
  }
  return d;
}

double Norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

// ||got - want|| / ||want||.
double RelErr(const std::vector<double>& got, const std::vector<double>& want) {
  std::vector<double> d(got.size());
  for (size_t i = 0; i < got.size(); ++i) d[i] = got[i] - want[i];
  return Norm(d) / Norm(want);
}

// max_i |got_i - want_i| / max_i |want_i|.
double MaxErr(const std::vector<double>& got, const std::vector<double>& want) {
  double e = 0, m = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    e = std::max(e, std::abs(got[i] - want[i]));
    m = std::max(m, std::abs(want[i]));
  }
  return e / m;
}

float MaxAbsDiff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// The tiny config of the gradient check, and a batch of documents of
// different lengths: one longer than block_size (truncated to 6 positions),
// one of 3 positions, one of a single position.
ModelConfig TinyConfig() {
  ModelConfig c;
  c.n_embd = 8;
  c.n_head = 2;
  c.n_layer = 2;
  c.block_size = 6;
  c.vocab_size = 5;
  return c;
}
std::vector<Doc> TinyDocs() {
  return {{4, 0, 1, 4}, {4, 2, 3, 0, 1, 2, 3, 1, 0, 4}, {4, 4}};
}

// ---------------------------------------------------------------------------
// Sizes.

TEST(ModelMathTest, ReferenceConfigHas4192Parameters) {
  const ModelConfig config;  // n_embd 16, n_head 4, n_layer 1, block 16
  ASSERT_EQ(config.vocab_size, 27);
  EXPECT_EQ(config.num_parameters(), 4192);
  EXPECT_EQ(ParameterLayout(config).total_size(), 4192u);
  EXPECT_EQ(TrainingGraph(config, 1).layout().total_size(), 4192u);
  EXPECT_EQ(Model::Initialize(config, 1).parameters().size(), 4192u);
}

// ---------------------------------------------------------------------------
// Forward against the spec.

TEST(ModelMathTest, ForwardMatchesReference) {
  const ModelConfig config = TinyConfig();
  const std::vector<float> params = RandomParams(config, 7, 0.3f);
  const std::vector<Doc> docs = TinyDocs();
  const Reference ref(config,
                      std::vector<double>(params.begin(), params.end()));

  TrainingGraph graph(config, 4);
  const float loss = graph.Forward(params.data(), Pointers(docs));
  // Packed rows: 3, 6 and 1 positions back to back.
  EXPECT_EQ(graph.num_targets(), 3 + 6 + 1);
  EXPECT_EQ(graph.row_offset(0), 0);
  EXPECT_EQ(graph.row_offset(1), 3);
  EXPECT_EQ(graph.row_offset(2), 9);
  EXPECT_NEAR(loss, ref.Loss(docs), 1e-5);

  const int V = config.vocab_size;
  for (size_t b = 0; b < docs.size(); ++b) {
    const std::vector<std::vector<double>> want = ref.Logits(docs[b]);
    const int row0 = graph.row_offset(b);
    for (size_t t = 0; t < want.size(); ++t) {
      for (int v = 0; v < V; ++v) {
        EXPECT_NEAR(graph.logits()[(row0 + t) * V + v], want[t][v], 1e-5)
            << "doc " << b << " position " << t << " token " << v;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Backward against central finite differences.

// Error of one tensor's gradient: the larger of the norm-wise and the
// entry-wise relative error. A tensor whose true gradient is zero (attn_wq
// and attn_wk when every document has one position: a softmax over one key)
// must come out as zero.
double GradError(const std::vector<double>& got,
                 const std::vector<double>& want) {
  if (Norm(want) < 1e-12) return Norm(got) < 1e-9 ? 0.0 : 1.0;
  return std::max(RelErr(got, want), MaxErr(got, want));
}

struct GradientCase {
  std::string name;
  std::vector<Doc> docs;
  bool every_tensor_has_gradient;
  int threads = 1;  // TrainingGraph's shards
  // Heads: TinyConfig's n_embd 8 over n_head 2 unless set (attention's loops
  // are compiled per head width, with a run-time fallback).
  int n_embd = 8, n_head = 2;
  // Entries of each tensor checked, evenly spaced; 0: all. Wide models have
  // too many parameters for a finite difference of each.
  int max_entries = 0;
};
void PrintTo(const GradientCase& c, std::ostream* os) { *os << c.name; }

class ModelMathGradientTest : public ::testing::TestWithParam<GradientCase> {
 protected:
  void SetUp() override {
    params_ = RandomParams(config_, 11, 0.3f);
    TrainingGraph graph(config_, docs_.size(), GetParam().threads);
    graph.Forward(params_.data(), Pointers(docs_));
    num_targets_ = graph.num_targets();
    grads_.assign(params_.size(), std::numeric_limits<float>::quiet_NaN());
    graph.Backward(params_.data(), grads_.data());

    // d(loss)/d(p_i) of the double-precision spec, (L(p+h) - L(p-h)) / 2h,
    // accurate to about 1e-9.
    Reference ref(config_, std::vector<double>(params_.begin(), params_.end()));
    numeric_.resize(params_.size());
    const double h = 1e-5;
    const ParameterLayout layout(config_);
    for (const TensorSpec& t : layout.tensors()) {
      for (size_t i : Entries(t)) {
        const double p = ref.params()[i];
        ref.params()[i] = p + h;
        const double up = ref.Loss(docs_);
        ref.params()[i] = p - h;
        const double down = ref.Loss(docs_);
        ref.params()[i] = p;
        numeric_[i] = (up - down) / (2 * h);
      }
    }
  }

  // The indices into the parameters of the entries of t that are checked.
  static std::vector<size_t> Entries(const TensorSpec& t) {
    const size_t max = GetParam().max_entries;
    const size_t step = max == 0 ? 1 : std::max<size_t>(1, t.size() / max);
    std::vector<size_t> entries;
    for (size_t j = 0; j < t.size(); j += step) entries.push_back(t.offset + j);
    return entries;
  }

  std::vector<double> Numeric(const TensorSpec& t) const {
    std::vector<double> out;
    for (size_t i : Entries(t)) out.push_back(numeric_[i]);
    return out;
  }
  std::vector<double> Analytic(const TensorSpec& t) const {
    std::vector<double> out;
    for (size_t i : Entries(t)) out.push_back(grads_[i]);
    return out;
  }

  // Float gradients against double differences: below 1e-6 when right.
  static constexpr double kTolerance = 1e-4;

  const ModelConfig config_ = [] {
    ModelConfig c = TinyConfig();
    c.n_embd = GetParam().n_embd;
    c.n_head = GetParam().n_head;
    return c;
  }();
  const std::vector<Doc> docs_ = GetParam().docs;
  std::vector<float> params_, grads_;
  std::vector<double> numeric_;
  int64_t num_targets_ = 0;
};

TEST_P(ModelMathGradientTest, EveryTensorMatchesFiniteDifferences) {
  const ParameterLayout layout(config_);
  ASSERT_EQ(layout.tensors().size(), 3u + 6u * config_.n_layer);
  for (const TensorSpec& t : layout.tensors()) {
    const std::vector<double> want = Numeric(t);
    if (GetParam().every_tensor_has_gradient) {
      EXPECT_GT(Norm(want), 1e-3) << t.name << " has no gradient to check";
    }
    EXPECT_LT(GradError(Analytic(t), want), kTolerance) << t.name;
  }
}

TEST_P(ModelMathGradientTest, IsSensitiveToWrongGradients) {
  const ParameterLayout layout(config_);
  for (const TensorSpec& t : layout.tensors()) {
    const std::vector<double> want = Numeric(t);
    const std::vector<double> got = Analytic(t);
    ASSERT_LT(GradError(got, want), kTolerance) << t.name;
    if (Norm(want) < 1e-12) continue;
    // A gradient 1% too large fails.
    std::vector<double> scaled = got;
    for (double& g : scaled) g *= 1.01;
    EXPECT_GT(GradError(scaled, want), kTolerance) << t.name;
    // So does one wrong entry, off by 1% of the largest entry.
    double largest = 0;
    for (double w : want) largest = std::max(largest, std::abs(w));
    std::vector<double> one = got;
    one[one.size() / 2] += 0.01 * largest;
    EXPECT_GT(GradError(one, want), kTolerance) << t.name;
    // And the gradient of a sum instead of a mean over the targets.
    if (num_targets_ > 1) {
      std::vector<double> sum = got;
      for (double& g : sum) g *= num_targets_;
      EXPECT_GT(GradError(sum, want), kTolerance) << t.name;
    }
  }
}

// A coarser check in float on TrainingGraph::Forward itself: Backward is the
// gradient of the graph's own forward, norm-wise per tensor.
TEST_P(ModelMathGradientTest, FloatFiniteDifferencesOfTheGraph) {
  const ParameterLayout layout(config_);
  TrainingGraph graph(config_, docs_.size(), GetParam().threads);
  std::vector<float> p = params_;
  // h trades the O(h^2) error of the relu kinks against float rounding of
  // the loss (~1e-7 / h); 1e-3 keeps both well under the tolerance. At 64
  // channels the entries are about 10x smaller, so the rounding is a larger
  // share of them: a wider h and a looser tolerance (the double check above
  // is the precise one).
  const bool wide = config_.n_embd >= 64;
  const float h = wide ? 3e-3f : 1e-3f;
  const double tolerance = wide ? 5e-2 : 2e-2;
  for (const TensorSpec& t : layout.tensors()) {
    std::vector<double> got, want;
    for (size_t i : Entries(t)) {
      const float orig = p[i];
      p[i] = orig + h;
      const double up = graph.Forward(p.data(), Pointers(docs_));
      p[i] = orig - h;
      const double down = graph.Forward(p.data(), Pointers(docs_));
      p[i] = orig;
      want.push_back((up - down) / (2.0 * h));
      got.push_back(grads_[i]);
    }
    if (Norm(want) == 0) {
      EXPECT_LT(Norm(got), 1e-9) << t.name;
    } else {
      EXPECT_LT(RelErr(got, want), tolerance) << t.name;
    }
  }
}

// Backward overwrites every gradient (the buffer started as NaN in SetUp).
TEST_P(ModelMathGradientTest, BackwardOverwritesEveryGradient) {
  for (size_t i = 0; i < grads_.size(); ++i) {
    ASSERT_TRUE(std::isfinite(grads_[i])) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Batches, ModelMathGradientTest,
    ::testing::Values(
        // Truncated and short documents packed together.
        GradientCase{"ThreeDocs", TinyDocs(), true},
        // Six documents of six different lengths (1 to 6 positions, the
        // longest truncated), longest first, so that every document but the
        // first starts at a row offset that is no multiple of any length.
        GradientCase{"SixRaggedDocs",
                     {{4, 3, 2, 1, 0, 1, 2, 3, 4},
                      {4, 0, 4},
                      {4, 1, 2, 3, 0, 4},
                      {4, 4},
                      {4, 2, 0, 1, 4},
                      {4, 3, 3, 1, 2, 0, 4}},
                     true},
        // The same batch cut into three shards, one per thread.
        GradientCase{"SixRaggedDocsThreeThreads",
                     {{4, 3, 2, 1, 0, 1, 2, 3, 4},
                      {4, 0, 4},
                      {4, 1, 2, 3, 0, 4},
                      {4, 4},
                      {4, 2, 0, 1, 4},
                      {4, 3, 3, 1, 2, 0, 4}},
                     true,
                     3},
        // Attention's other loops: the default 2 heads of 4 and 2 heads of 8
        // run all heads at once, as do the reference config's 4 heads of 4;
        // three heads of 4 and one of 16 or 64 run per head, heads of 6 at
        // run-time width.
        GradientCase{"FourHeadsOf4", TinyDocs(), true, 1, 16, 4},
        GradientCase{"TwoHeadsOf8", TinyDocs(), true, 2, 16, 2},
        GradientCase{"ThreeHeadsOf4", TinyDocs(), true, 1, 12, 3},
        GradientCase{"HeadWidth16", TinyDocs(), true, 1, 16, 1},
        GradientCase{"HeadWidth6", TinyDocs(), true, 2, 12, 2},
        // One head of 64, the widest compiled: 99k parameters, 32 entries of
        // each tensor checked.
        GradientCase{"HeadWidth64", TinyDocs(), true, 1, 64, 1, 32},
        // A document of exactly block_size positions.
        GradientCase{"FullBlock", {{4, 0, 1, 2, 3, 1, 4}}, true},
        // One position: every matmul has a single row.
        GradientCase{"OnePosition", {{4, 2}}, false}),
    [](const ::testing::TestParamInfo<GradientCase>& info) {
      return info.param.name;
    });

// ---------------------------------------------------------------------------
// Packing: a document batched with a longer one contributes exactly what it
// contributes alone, weighted by its share of the targets, whichever comes
// first. Attention that crossed a document boundary, or a position taken
// from the row instead of the document, would change both.

TEST(ModelMathTest, PackedDocumentsAreIndependent) {
  ModelConfig config = TinyConfig();
  config.block_size = 8;
  const std::vector<float> params = RandomParams(config, 3, 0.3f);
  const Doc shorter = {4, 1, 2, 4};                   // 3 targets
  const Doc longer = {4, 3, 0, 0, 2, 1, 3, 2, 0, 4};  // 8 targets (truncated)
  const size_t P = params.size();
  auto run = [&](TrainingGraph& graph, std::vector<const Doc*> docs,
                 std::vector<float>* grads) {
    grads->assign(P, 0.0f);
    const float loss = graph.Forward(params.data(), docs);
    graph.Backward(params.data(), grads->data());
    return loss;
  };
  TrainingGraph graph(config, 3);
  std::vector<float> g_short, g_long;
  const float l_short = run(graph, {&shorter}, &g_short);
  ASSERT_EQ(graph.num_targets(), 3);
  const int V = config.vocab_size;
  const std::vector<float> logits_short(graph.logits(), graph.logits() + 3 * V);
  const float l_long = run(graph, {&longer}, &g_long);
  ASSERT_EQ(graph.num_targets(), 8);
  const std::vector<float> logits_long(graph.logits(), graph.logits() + 8 * V);

  for (const bool short_first : {true, false}) {
    SCOPED_TRACE(short_first ? "shorter first" : "longer first");
    std::vector<float> g_both;
    const float l_both = short_first ? run(graph, {&shorter, &longer}, &g_both)
                                     : run(graph, {&longer, &shorter}, &g_both);
    ASSERT_EQ(graph.num_targets(), 11);
    EXPECT_NEAR(l_both * 11, l_short * 3 + l_long * 8, 1e-5);
    float gmax = 0, err = 0;
    for (size_t i = 0; i < P; ++i) {
      const float want = (g_short[i] * 3 + g_long[i] * 8) / 11;
      gmax = std::max(gmax, std::abs(want));
      err = std::max(err, std::abs(g_both[i] - want));
    }
    EXPECT_GT(gmax, 1e-2);
    EXPECT_LT(err, 1e-6f * std::max(1.0f, gmax));
    // Each document's logits are what it gets alone, at its row offset.
    const int s = graph.row_offset(short_first ? 0 : 1);
    const int l = graph.row_offset(short_first ? 1 : 0);
    EXPECT_EQ(s, short_first ? 0 : 8);
    EXPECT_LT(MaxAbsDiff(graph.logits() + s * V, logits_short.data(), 3 * V),
              1e-6f);
    EXPECT_LT(MaxAbsDiff(graph.logits() + l * V, logits_long.data(), 8 * V),
              1e-6f);
  }
}

// Shards: a graph with threads gives the single-threaded loss and gradients up
// to float summation order, the same bits on every call, and handles batches
// with fewer documents than threads.
TEST(ModelMathTest, ThreadedGraphEqualsSingleThreaded) {
  ModelConfig config = TinyConfig();
  const std::vector<float> params = RandomParams(config, 13, 0.3f);
  std::vector<Doc> docs;
  for (int i = 0; i < 9; ++i) {
    docs.push_back(RandomDoc(config.vocab_size, 2 + (i * 5) % 9, 40 + i));
  }
  const size_t P = params.size();
  for (const size_t batch : {size_t{1}, size_t{2}, docs.size()}) {
    const std::vector<Doc> part(docs.begin(), docs.begin() + batch);
    TrainingGraph single(config, docs.size());
    std::vector<float> want(P);
    const float want_loss = single.Forward(params.data(), Pointers(part));
    single.Backward(params.data(), want.data());
    for (const int threads : {2, 3, 4}) {
      SCOPED_TRACE(testing::Message()
                   << batch << " docs, " << threads << " threads");
      TrainingGraph graph(config, docs.size(), threads);
      std::vector<float> got(P, std::numeric_limits<float>::quiet_NaN()),
          again(P);
      const float loss = graph.Forward(params.data(), Pointers(part));
      graph.Backward(params.data(), got.data());
      EXPECT_EQ(graph.num_targets(), single.num_targets());
      EXPECT_NEAR(loss, want_loss, 1e-6);
      float gmax = 0;
      for (float v : want) gmax = std::max(gmax, std::abs(v));
      EXPECT_LT(MaxAbsDiff(got.data(), want.data(), P), 1e-6f * gmax);
      EXPECT_EQ(graph.Forward(params.data(), Pointers(part)), loss);
      graph.Backward(params.data(), again.data());
      EXPECT_EQ(again, got);
    }
  }
}

// Activations are reused across batches of different shapes without stale
// state: a graph that ran a long batch gives what a fresh graph gives.
TEST(ModelMathTest, ReusedGraphEqualsFreshGraph) {
  const ModelConfig config = TinyConfig();
  const std::vector<float> params = RandomParams(config, 5, 0.3f);
  const std::vector<Doc> all = TinyDocs();
  const std::vector<Doc> small = {{4, 1, 4}};
  TrainingGraph used(config, 3), fresh(config, 3);
  std::vector<float> g_used(params.size()), g_fresh(params.size());
  used.Forward(params.data(), Pointers(all));
  used.Backward(params.data(), g_used.data());
  const float a = used.Forward(params.data(), Pointers(small));
  used.Backward(params.data(), g_used.data());
  const float b = fresh.Forward(params.data(), Pointers(small));
  fresh.Backward(params.data(), g_fresh.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(g_used, g_fresh);
  // Backward only reads what Forward kept: calling it again changes nothing.
  used.Backward(params.data(), g_used.data());
  EXPECT_EQ(g_used, g_fresh);
}

// ---------------------------------------------------------------------------
// Decoding with the KV cache equals the training forward.

struct DecoderCase {
  std::string name;
  ModelConfig config;
  float std;        // of the random weights
  float tolerance;  // max abs difference of logits
};
void PrintTo(const DecoderCase& c, std::ostream* os) { *os << c.name; }

class ModelMathDecoderTest : public ::testing::TestWithParam<DecoderCase> {};

TEST_P(ModelMathDecoderTest, StepByStepEqualsCausalForward) {
  const ModelConfig& config = GetParam().config;
  const Model model =
      *Model::FromParameters(config, RandomParams(config, 21, GetParam().std));
  const int V = config.vocab_size, T = config.block_size;
  // One document longer than the block (truncated) and one shorter.
  for (const Doc& doc : {RandomDoc(V, T + 5, 1), RandomDoc(V, T / 2, 2)}) {
    TrainingGraph graph(config, 1);
    graph.Forward(model.parameters().data(), {&doc});
    const int n = graph.num_targets();
    ASSERT_EQ(n, std::min<int>(T, doc.size() - 1));

    Decoder decoder(model, 1);
    KVCache cache(config);
    std::vector<float> logits(V);
    float worst = 0;
    for (int t = 0; t < n; ++t) {
      ASSERT_EQ(cache.length(), t);
      decoder.Step(doc[t], &cache, logits.data());
      worst =
          std::max(worst, MaxAbsDiff(logits.data(), graph.logits() + t * V, V));
    }
    EXPECT_LE(worst, GetParam().tolerance)
        << "doc of " << doc.size() << " tokens";
  }
  // The cache fills at block_size.
  Decoder decoder(model, 1);
  KVCache cache(config);
  std::vector<float> logits(V);
  for (int t = 0; t < T; ++t) decoder.Step(0, &cache, logits.data());
  EXPECT_TRUE(cache.full());
  cache.Clear();
  EXPECT_EQ(cache.length(), 0);
}

TEST_P(ModelMathDecoderTest, StepBatchEqualsStep) {
  const ModelConfig& config = GetParam().config;
  const Model model =
      *Model::FromParameters(config, RandomParams(config, 22, GetParam().std));
  const int V = config.vocab_size, T = config.block_size;
  // Five sequences prefilled to different lengths, one starting empty.
  const std::vector<int> lengths = {0, 1, 3, T / 2, T - 3};
  const int n = lengths.size();
  Decoder single(model, 1), batched(model, n);
  std::vector<KVCache> a(n, KVCache(config)), b(n, KVCache(config));
  std::vector<float> logits(V);
  for (int i = 0; i < n; ++i) {
    const Doc prefix = RandomDoc(V, lengths[i] + 2, 100 + i);
    for (int t = 0; t < lengths[i]; ++t) {
      single.Step(prefix[t], &a[i], logits.data());
      single.Step(prefix[t], &b[i], logits.data());
    }
  }
  std::vector<KVCache*> caches;
  for (KVCache& c : b) caches.push_back(&c);
  Rng rng(9);
  for (int round = 0; round < 3; ++round) {
    std::vector<int> tokens(n);
    for (int& tok : tokens) tok = static_cast<int>(rng.UniformInt(V));
    std::vector<float> got(n * V), want(n * V);
    batched.StepBatch(tokens, caches, got.data());
    for (int i = 0; i < n; ++i) {
      single.Step(tokens[i], &a[i], want.data() + i * V);
      EXPECT_EQ(b[i].length(), a[i].length());
    }
    EXPECT_LE(MaxAbsDiff(got.data(), want.data(), n * V), GetParam().tolerance)
        << "round " << round;
  }
  for (int i = 0; i < n; ++i) {
    for (int l = 0; l < config.n_layer; ++l) {
      // The whole layer, padding included: both saw the same appends.
      const size_t size = static_cast<size_t>(config.n_embd) * a[i].stride();
      EXPECT_LE(MaxAbsDiff(a[i].keys(l), b[i].keys(l), size),
                GetParam().tolerance);
      EXPECT_LE(MaxAbsDiff(a[i].values(l), b[i].values(l), size),
                GetParam().tolerance);
    }
  }
  // A batch of one is Step exactly.
  KVCache one(config), other(config);
  std::vector<float> x(V), y(V);
  single.Step(3, &one, x.data());
  KVCache* p = &other;
  batched.StepBatch({3}, absl::MakeConstSpan(&p, 1), y.data());
  EXPECT_EQ(x, y);
}

// Prefill: n consecutive tokens of one sequence in one forward give what n
// Steps give, logits and cache, in chunks that start at 0 and at other
// lengths and cross the cache's kLanes-position groups; a cache cleared and
// prefilled again equals a fresh one (no stale keys leak into the padding).
TEST_P(ModelMathDecoderTest, PrefillEqualsStep) {
  const ModelConfig& config = GetParam().config;
  const Model model =
      *Model::FromParameters(config, RandomParams(config, 23, GetParam().std));
  const int V = config.vocab_size, T = config.block_size;
  const Doc doc = RandomDoc(V, T + 2, 7);
  // Per layer and channel, the positions attention_decode reads: the filled
  // ones and the padding up to the next multiple of kLanes (must be 0).
  auto expect_same_cache = [&](const KVCache& got, const KVCache& want,
                               float tolerance) {
    ASSERT_EQ(got.length(), want.length());
    const int read = RoundUpToLanes(got.length());
    for (int l = 0; l < config.n_layer; ++l) {
      float keys = 0, values = 0;
      for (int c = 0; c < config.n_embd; ++c) {
        const size_t at = static_cast<size_t>(c) * got.stride();
        keys = std::max(keys,
                        MaxAbsDiff(got.keys(l) + at, want.keys(l) + at, read));
        values = std::max(
            values, MaxAbsDiff(got.values(l) + at, want.values(l) + at, read));
      }
      EXPECT_LE(keys, tolerance) << "layer " << l;
      EXPECT_LE(values, tolerance) << "layer " << l;
    }
  };
  Decoder single(model, 1), prefill(model, T);
  // Token by token: the logits of every position.
  KVCache stepped(config);
  std::vector<float> want(static_cast<size_t>(T) * V);
  for (int t = 0; t < T; ++t) {
    single.Step(doc[t], &stepped, want.data() + static_cast<size_t>(t) * V);
  }
  // Chunks of 1, 3, 9, then the rest: positions 0, 1..3, 4..12 (across the
  // group at 8) and 13..T-1.
  KVCache all(config), last(config);
  std::vector<float> got(static_cast<size_t>(T) * V), got_last(V);
  int begin = 0;
  for (const int size : {1, 3, 9, T}) {
    const int n = std::min(size, T - begin);
    if (n == 0) break;
    const auto chunk = absl::MakeConstSpan(doc.data() + begin, n);
    prefill.Prefill(chunk, &all, Decoder::PrefillLogits::kAll,
                    got.data() + static_cast<size_t>(begin) * V);
    prefill.Prefill(chunk, &last, Decoder::PrefillLogits::kLast,
                    got_last.data());
    begin += n;
    ASSERT_EQ(all.length(), begin);
    // The last row alone (an sgemv) is the row among all of them.
    EXPECT_LE(MaxAbsDiff(got.data() + static_cast<size_t>(begin - 1) * V,
                         got_last.data(), V),
              GetParam().tolerance);
  }
  ASSERT_TRUE(all.full());
  EXPECT_LE(MaxAbsDiff(got.data(), want.data(), got.size()),
            GetParam().tolerance);
  expect_same_cache(all, stepped, GetParam().tolerance);
  expect_same_cache(last, all, 0.0f);

  // Cleared and refilled with a shorter sequence, from position 0.
  const Doc other = RandomDoc(V, T / 2 + 2, 8);
  const int n = T / 2 + 1;
  KVCache fresh(config);
  std::vector<float> fresh_logits(V);
  for (int t = 0; t < n; ++t)
    single.Step(other[t], &fresh, fresh_logits.data());
  all.Clear();
  prefill.Prefill(absl::MakeConstSpan(other.data(), n), &all,
                  Decoder::PrefillLogits::kLast, got_last.data());
  EXPECT_LE(MaxAbsDiff(got_last.data(), fresh_logits.data(), V),
            GetParam().tolerance);
  expect_same_cache(all, fresh, GetParam().tolerance);
}

ModelConfig MultiLayerConfig() {
  ModelConfig c;
  c.n_embd = 32;
  c.n_head = 4;
  c.n_layer = 3;
  c.block_size = 24;
  c.vocab_size = 30;
  return c;
}

// Heads of 32 as in the benchmarks' (d), and a block size that is not a
// multiple of the cache's 8-position groups.
ModelConfig WideHeadsConfig() {
  ModelConfig c;
  c.n_embd = 128;
  c.n_head = 4;
  c.n_layer = 2;
  c.block_size = 13;
  c.vocab_size = 27;
  return c;
}

// Heads of 16 and of 64, the widest attention_forward compiles, with a block
// of five groups of 8 positions and a bit.
ModelConfig HeadWidthConfig(int n_embd, int n_head) {
  ModelConfig c;
  c.n_embd = n_embd;
  c.n_head = n_head;
  c.n_layer = 2;
  c.block_size = 41;
  c.vocab_size = 27;
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Configs, ModelMathDecoderTest,
    ::testing::Values(
        DecoderCase{"Reference", ModelConfig{}, 0.08f, 1e-5f},
        DecoderCase{"MultiLayer", MultiLayerConfig(), 0.08f, 1e-5f},
        DecoderCase{"WideHeads", WideHeadsConfig(), 0.08f, 1e-5f},
        DecoderCase{"HeadWidth16", HeadWidthConfig(32, 2), 0.08f, 1e-5f},
        DecoderCase{"HeadWidth64", HeadWidthConfig(128, 2), 0.08f, 1e-5f},
        // Weights as large as after training make logits of about 40, whose
        // float spacing is 4e-6: the two summation orders then agree to
        // about 1e-6 relative, a few ulps.
        DecoderCase{"ReferenceLargeWeights", ModelConfig{}, 0.5f, 5e-5f},
        DecoderCase{"MultiLayerLargeWeights", MultiLayerConfig(), 0.3f, 5e-5f}),
    [](const ::testing::TestParamInfo<DecoderCase>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace microgpt
