#include "common/decoder.h"

#include <cstring>

#include "common/check.h"
#include "common/layers.h"
#include "common/vec_math.h"

namespace microgpt {

KVCache::KVCache(const ModelConfig& config)
    : block_size_(config.block_size),
      channels_(config.n_embd),
      stride_(RoundUpToLanes(config.block_size)),
      layer_stride_(static_cast<size_t>(channels_) * stride_),
      keys_(config.n_layer * layer_stride_),
      values_(config.n_layer * layer_stride_) {}

void KVCache::Append(int layer, const float* key, const float* value) {
  float* k = keys_.data() + layer * layer_stride_ + length_;
  float* v = values_.data() + layer * layer_stride_ + length_;
  const bool new_group = length_ % kLanes == 0;
  for (int c = 0; c < channels_; ++c) {
    float* kc = k + static_cast<size_t>(c) * stride_;
    float* vc = v + static_cast<size_t>(c) * stride_;
    if (new_group) {
      std::memset(kc, 0, sizeof(float) * kLanes);
      std::memset(vc, 0, sizeof(float) * kLanes);
    }
    kc[0] = key[c];
    vc[0] = value[c];
  }
}

Decoder::Decoder(const Model& model, int max_batch)
    : model_(model), max_batch_(max_batch), w_(model.weights()) {
  const ModelConfig& config = model.config();
  const size_t n = max_batch, C = config.n_embd;
  x_.resize(n * C);
  normed_.resize(n * C);
  qkv_.resize(n * 3 * C);
  attn_out_.resize(n * C);
  hidden_.resize(n * 4 * C);
  scores_.resize(static_cast<size_t>(config.n_head) *
                 RoundUpToLanes(config.block_size));
}

void Decoder::Step(int token, KVCache* cache, float* logits) {
  Forward(&token, &cache, 1, logits);
}

void Decoder::StepBatch(absl::Span<const int> tokens,
                        absl::Span<KVCache* const> caches, float* logits) {
  Check(tokens.size() == caches.size(), "Decoder: one cache per token");
  if (tokens.empty()) return;
  Forward(tokens.data(), caches.data(), static_cast<int>(tokens.size()),
          logits);
}

// docs/model.md's forward for one token at position t = cache->length(), for n
// sequences at once: the same kernels as TrainingGraph::Forward, with the
// keys and values of positions s < t read from the cache instead of
// recomputed. The caches must be distinct.
void Decoder::Forward(const int* tokens, KVCache* const* caches, int n,
                      float* logits) {
  const ModelConfig& config = model_.config();
  const int C = config.n_embd, H = 4 * C, NH = config.n_head;
  const int V = config.vocab_size;
  Check(n >= 1 && n <= max_batch_, "Decoder: need 1..max_batch sequences");
  float* x = x_.data();
  float* normed = normed_.data();
  float* qkv = qkv_.data();
  float* attn_out = attn_out_.data();
  float* hidden = hidden_.data();

  // x = rmsnorm(wte[token] + wpe[t])                         (n, C)
  for (int i = 0; i < n; ++i) {
    const KVCache& cache = *caches[i];
    Check(cache.block_size_ == config.block_size && cache.channels_ == C &&
              cache.keys_.size() == config.n_layer * cache.layer_stride_,
          "Decoder: cache of another model's sizes");
    Check(!cache.full(), "Decoder: cache is full");
    Check(tokens[i] >= 0 && tokens[i] < V, "Decoder: token out of range");
    embedding_forward(x + i * C, &tokens[i], w_.wte,
                      w_.wpe + static_cast<size_t>(cache.length_) * C, 1, 1, C);
  }
  rmsnorm_forward(x, nullptr, x, n, C);
  for (int l = 0; l < config.n_layer; ++l) {
    const ParameterViews<const float>::Layer& w = w_.layers[l];
    // x += attention(rmsnorm(x)) Wo^T, with this token's k, v appended
    rmsnorm_forward(normed, nullptr, x, n, C);
    matmul_forward(qkv, normed, w.attn_wqkv, n, C, 3 * C);
    for (int i = 0; i < n; ++i) {
      KVCache& cache = *caches[i];
      const float* q = qkv + static_cast<size_t>(i) * 3 * C;
      cache.Append(l, q + C, q + 2 * C);
      attention_decode(attn_out + static_cast<size_t>(i) * C, scores_.data(), q,
                       cache.keys(l), cache.values(l), cache.length_ + 1,
                       cache.stride_, C, NH);
    }
    matmul_forward(x, attn_out, w.attn_wo, n, C, C, /*accumulate=*/true);
    // x += relu(rmsnorm(x) fc1^T) fc2^T
    rmsnorm_forward(normed, nullptr, x, n, C);
    matmul_forward(hidden, normed, w.mlp_fc1, n, C, H);
    relu_forward(hidden, hidden, n * H);
    matmul_forward(x, hidden, w.mlp_fc2, n, H, C, /*accumulate=*/true);
  }
  // logits = x lm_head^T (no final norm)                     (n, V)
  matmul_forward(logits, x, w_.lm_head, n, C, V);
  for (int i = 0; i < n; ++i) ++caches[i]->length_;
}

}  // namespace microgpt
