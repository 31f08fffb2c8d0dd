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

void KVCache::Write(int layer, int position, const float* key,
                    const float* value) {
  float* k = keys_.data() + layer * layer_stride_ + position;
  float* v = values_.data() + layer * layer_stride_ + position;
  const bool new_group = position % kLanes == 0;
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

Decoder::Decoder(const Model& model, int max_rows)
    : model_(model), max_rows_(max_rows), w_(model.weights()) {
  const ModelConfig& config = model.config();
  const size_t n = max_rows, C = config.n_embd;
  rows_.resize(n);
  x_.resize(n * C);
  normed_.resize(n * C);
  qkv_.resize(n * 3 * C);
  attn_out_.resize(n * C);
  hidden_.resize(n * 4 * C);
  scores_.resize(static_cast<size_t>(config.n_head) *
                 RoundUpToLanes(config.block_size));
}

void Decoder::Step(int token, KVCache* cache, float* logits) {
  StepBatch(absl::MakeConstSpan(&token, 1), absl::MakeConstSpan(&cache, 1),
            logits);
}

void Decoder::StepBatch(absl::Span<const int> tokens,
                        absl::Span<KVCache* const> caches, float* logits) {
  Check(tokens.size() == caches.size(), "Decoder: one cache per token");
  if (tokens.empty()) return;
  const int n = static_cast<int>(tokens.size());
  Check(n <= max_rows_, "Decoder: more sequences than max_rows");
  for (int i = 0; i < n; ++i) {
    rows_[i] = {tokens[i], caches[i]->length_, caches[i]};
  }
  Forward(n, PrefillLogits::kAll, logits);
}

void Decoder::Prefill(absl::Span<const int> tokens, KVCache* cache,
                      PrefillLogits which, float* logits) {
  const int n = static_cast<int>(tokens.size());
  Check(n >= 1 && n <= max_rows_, "Decoder: need 1..max_rows tokens");
  Check(cache->length_ + n <= cache->block_size_,
        "Decoder: the tokens do not fit in the cache");
  for (int i = 0; i < n; ++i) {
    rows_[i] = {tokens[i], cache->length_ + i, cache};
  }
  Forward(n, which, logits);
}

// docs/model.md's forward for n rows, each a token at its position of its
// sequence: the same kernels as TrainingGraph::Forward, with the keys and
// values of earlier positions read from the cache instead of recomputed.
// Each row's key and value are written to the cache just before its
// attention, so a row of a prefill sees the rows before it and, with the
// positions after it not written yet, a zero padding as attention_decode
// needs.
void Decoder::Forward(int n, PrefillLogits which, float* logits) {
  const ModelConfig& config = model_.config();
  const int C = config.n_embd, H = 4 * C, NH = config.n_head;
  const int V = config.vocab_size;
  float* x = x_.data();
  float* normed = normed_.data();
  float* qkv = qkv_.data();
  float* attn_out = attn_out_.data();
  float* hidden = hidden_.data();

  // x = rmsnorm(wte[token] + wpe[t])                         (n, C)
  for (int i = 0; i < n; ++i) {
    const Row& row = rows_[i];
    const KVCache& cache = *row.cache;
    Check(cache.block_size_ == config.block_size && cache.channels_ == C &&
              cache.keys_.size() == config.n_layer * cache.layer_stride_,
          "Decoder: cache of another model's sizes");
    Check(row.position < cache.block_size_, "Decoder: cache is full");
    Check(row.token >= 0 && row.token < V, "Decoder: token out of range");
    embedding_forward(x + static_cast<size_t>(i) * C, &row.token, w_.wte,
                      w_.wpe + static_cast<size_t>(row.position) * C, 1, 1, C);
  }
  rmsnorm_forward(x, nullptr, x, n, C);
  for (int l = 0; l < config.n_layer; ++l) {
    const ParameterViews<const float>::Layer& w = w_.layers[l];
    // x += attention(rmsnorm(x)) Wo^T, with each row's k, v appended
    rmsnorm_forward(normed, nullptr, x, n, C);
    matmul_forward(qkv, normed, w.attn_wqkv, n, C, 3 * C);
    for (int i = 0; i < n; ++i) {
      const Row& row = rows_[i];
      const float* q = qkv + static_cast<size_t>(i) * 3 * C;
      row.cache->Write(l, row.position, q + C, q + 2 * C);
      attention_decode(attn_out + static_cast<size_t>(i) * C, scores_.data(), q,
                       row.cache->keys(l), row.cache->values(l),
                       row.position + 1, row.cache->stride_, C, NH);
    }
    matmul_forward(x, attn_out, w.attn_wo, n, C, C, /*accumulate=*/true);
    // x += relu(rmsnorm(x) fc1^T) fc2^T
    rmsnorm_forward(normed, nullptr, x, n, C);
    matmul_forward(hidden, normed, w.mlp_fc1, n, C, H);
    relu_forward(hidden, hidden, n * H);
    matmul_forward(x, hidden, w.mlp_fc2, n, H, C, /*accumulate=*/true);
  }
  // logits = x lm_head^T (no final norm)            (n, V) or the last (1, V)
  if (which == PrefillLogits::kAll) {
    matmul_forward(logits, x, w_.lm_head, n, C, V);
  } else {
    matmul_forward(logits, x + static_cast<size_t>(n - 1) * C, w_.lm_head, 1, C,
                   V);
  }
  for (int i = 0; i < n; ++i) rows_[i].cache->length_ = rows_[i].position + 1;
}

}  // namespace microgpt
