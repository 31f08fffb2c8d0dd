#include "common/training_graph.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/layers.h"

namespace microgpt {
namespace {

// Contract violations (too many documents, a document shorter than two
// tokens, a token outside the vocabulary) would read or write out of bounds.
void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "TrainingGraph: %s\n", what);
    std::abort();
  }
}

// The tensors of parameters.h's order: wte, wpe, lm_head, then per layer
// attn_wq, attn_wk, attn_wv (one [3C, C] matrix), attn_wo, mlp_fc1, mlp_fc2.
// Works for weights and gradients alike, without building a views vector.
template <typename F>
struct Tensors {
  const ParameterLayout& layout;
  F* base;
  F* at(int i) const { return base + layout.tensors()[i].offset; }
  F* wte() const { return at(0); }
  F* wpe() const { return at(1); }
  F* lm_head() const { return at(2); }
  F* attn_wqkv(int l) const { return at(3 + 6 * l); }
  F* attn_wo(int l) const { return at(3 + 6 * l + 3); }
  F* mlp_fc1(int l) const { return at(3 + 6 * l + 4); }
  F* mlp_fc2(int l) const { return at(3 + 6 * l + 5); }
};

}  // namespace

TrainingGraph::TrainingGraph(const ModelConfig& config, int max_batch)
    : config_(config), layout_(config), max_batch_(max_batch) {
  const size_t N = static_cast<size_t>(max_batch) * config.block_size;
  const size_t C = config.n_embd, H = 4 * C, V = config.vocab_size;
  const size_t T = config.block_size, NH = config.n_head;
  offsets_.assign(max_batch + 1, 0);
  tokens_.resize(N);
  targets_.resize(N);
  layers_.resize(config.n_layer);
  for (LayerActivations& a : layers_) {
    a.ln1.resize(N * C);
    a.ln1_rstd.resize(N);
    a.qkv.resize(N * 3 * C);
    a.att.resize(max_batch * NH * T * T);
    a.atty.resize(N * C);
    a.ln2.resize(N * C);
    a.ln2_rstd.resize(N);
    a.fch.resize(N * H);
  }
  encoded_.resize(N * C);
  encoded_rstd_.resize(N);
  x_.resize(N * C);
  logits_.resize(N * V);
  probs_.resize(N * V);
  dx_.resize(N * C);
  dln_.resize(N * C);
  datty_.resize(N * C);
  dfch_.resize(N * H);
  dqkv_.resize(N * 3 * C);
  dlogits_.resize(N * V);
  datt_.resize(T * T);
}

float TrainingGraph::Forward(const float* params,
                             absl::Span<const std::vector<int>* const> docs) {
  const int C = config_.n_embd, H = 4 * C, NH = config_.n_head;
  const int V = config_.vocab_size;

  // Inputs: each document gives n = min(block_size, len - 1) rows, packed
  // after the previous document's.
  Check(!docs.empty() && static_cast<int>(docs.size()) <= max_batch_,
        "need 1..max_batch documents");
  B_ = static_cast<int>(docs.size());
  const int B = B_;
  for (int b = 0; b < B; ++b) {
    const std::vector<int>& doc = *docs[b];
    Check(doc.size() >= 2, "a document needs at least 2 tokens");
    const int n =
        std::min(config_.block_size, static_cast<int>(doc.size()) - 1);
    int* tok = tokens_.data() + offsets_[b];
    int* tgt = targets_.data() + offsets_[b];
    for (int t = 0; t < n; ++t) {
      Check(doc[t] >= 0 && doc[t] < V && doc[t + 1] >= 0 && doc[t + 1] < V,
            "token out of range");
      tok[t] = doc[t];
      tgt[t] = doc[t + 1];
    }
    offsets_[b + 1] = offsets_[b] + n;
  }
  const int N = offsets_[B];

  const Tensors<const float> w{layout_, params};
  float* x = x_.data();
  // x = rmsnorm(wte[tok] + wpe[t])                          (N, C)
  for (int b = 0; b < B; ++b) {
    embedding_forward(encoded_.data() + static_cast<size_t>(offsets_[b]) * C,
                      tokens_.data() + offsets_[b], w.wte(), w.wpe(), 1,
                      offsets_[b + 1] - offsets_[b], C);
  }
  rmsnorm_forward(encoded_.data(), encoded_rstd_.data(), encoded_.data(), N, C);
  std::memcpy(x, encoded_.data(), sizeof(float) * N * C);
  for (int l = 0; l < config_.n_layer; ++l) {
    LayerActivations& a = layers_[l];
    // x += attention(rmsnorm(x)) Wo^T
    rmsnorm_forward(a.ln1.data(), a.ln1_rstd.data(), x, N, C);
    matmul_forward(a.qkv.data(), a.ln1.data(), w.attn_wqkv(l), N, C, 3 * C);
    attention_forward(a.atty.data(), a.att.data(), a.qkv.data(),
                      offsets_.data(), B, C, NH);
    matmul_forward(x, a.atty.data(), w.attn_wo(l), N, C, C,
                   /*accumulate=*/true);
    // x += relu(rmsnorm(x) fc1^T) fc2^T
    rmsnorm_forward(a.ln2.data(), a.ln2_rstd.data(), x, N, C);
    matmul_forward(a.fch.data(), a.ln2.data(), w.mlp_fc1(l), N, C, H);
    relu_forward(a.fch.data(), a.fch.data(), N * H);
    matmul_forward(x, a.fch.data(), w.mlp_fc2(l), N, H, C,
                   /*accumulate=*/true);
  }
  // logits = x lm_head^T (no final norm)                    (N, V)
  matmul_forward(logits_.data(), x, w.lm_head(), N, C, V);
  const double loss = crossentropy_forward(probs_.data(), logits_.data(),
                                           targets_.data(), N, V);
  return static_cast<float>(loss / N);
}

void TrainingGraph::Backward(const float* params, float* grads) {
  const int C = config_.n_embd, H = 4 * C, NH = config_.n_head;
  const int V = config_.vocab_size;
  Check(B_ > 0, "Backward needs a Forward first");
  const int B = B_, N = offsets_[B];
  const Tensors<const float> w{layout_, params};
  const Tensors<float> g{layout_, grads};
  float* dx = dx_.data();
  float* dln = dln_.data();

  // loss = mean over the rows of cross-entropy(logits)
  crossentropy_backward(dlogits_.data(), probs_.data(), targets_.data(),
                        1.0f / static_cast<float>(N), N, V);
  // logits = x lm_head^T
  matmul_backward(dx, g.lm_head(), dlogits_.data(), x_.data(), w.lm_head(), N,
                  C, V);
  for (int l = config_.n_layer - 1; l >= 0; --l) {
    const LayerActivations& a = layers_[l];
    // x += relu(rmsnorm(x) fc1^T) fc2^T
    matmul_backward(dfch_.data(), g.mlp_fc2(l), dx, a.fch.data(), w.mlp_fc2(l),
                    N, H, C);
    relu_backward(dfch_.data(), dfch_.data(), a.fch.data(), N * H);
    matmul_backward(dln, g.mlp_fc1(l), dfch_.data(), a.ln2.data(), w.mlp_fc1(l),
                    N, C, H);
    rmsnorm_backward(dx, dln, a.ln2.data(), a.ln2_rstd.data(), N, C);
    // x += attention(rmsnorm(x)) Wo^T
    matmul_backward(datty_.data(), g.attn_wo(l), dx, a.atty.data(),
                    w.attn_wo(l), N, C, C);
    attention_backward(dqkv_.data(), datt_.data(), datty_.data(), a.att.data(),
                       a.qkv.data(), offsets_.data(), B, C, NH);
    matmul_backward(dln, g.attn_wqkv(l), dqkv_.data(), a.ln1.data(),
                    w.attn_wqkv(l), N, C, 3 * C);
    rmsnorm_backward(dx, dln, a.ln1.data(), a.ln1_rstd.data(), N, C);
  }
  // x = rmsnorm(wte[tok] + wpe[t])
  std::memset(dln, 0, sizeof(float) * N * C);
  rmsnorm_backward(dln, dx, encoded_.data(), encoded_rstd_.data(), N, C);
  std::memset(g.wte(), 0, sizeof(float) * config_.vocab_size * C);
  std::memset(g.wpe(), 0, sizeof(float) * config_.block_size * C);
  for (int b = 0; b < B; ++b) {
    embedding_backward(
        g.wte(), g.wpe(), dln + static_cast<size_t>(offsets_[b]) * C,
        tokens_.data() + offsets_[b], 1, offsets_[b + 1] - offsets_[b], C);
  }
}

}  // namespace microgpt
