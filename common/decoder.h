// Inference: one token at a time over a per-sequence KV cache (docs/model.md's
// forward for one token at position t), and a batched step that advances many
// independent sequences, each at its own position, by one token in one call.
#ifndef MICROGPT_COMMON_DECODER_H_
#define MICROGPT_COMMON_DECODER_H_

#include <vector>

#include "absl/types/span.h"
#include "common/config.h"
#include "common/model.h"

namespace microgpt {

// The keys and values of one sequence. Per layer, channel-major as
// attention_decode reads them: [C, stride()], position s of channel c at
// c * stride() + s, stride() = block_size rounded up to a multiple of kLanes.
class KVCache {
 public:
  explicit KVCache(const ModelConfig& config);

  // Positions filled so far; the next token goes at position length().
  int length() const { return length_; }
  bool full() const { return length_ == block_size_; }
  void Clear() { length_ = 0; }

  int stride() const { return stride_; }
  const float* keys(int layer) const {
    return keys_.data() + layer * layer_stride_;
  }
  const float* values(int layer) const {
    return values_.data() + layer * layer_stride_;
  }

 private:
  friend class Decoder;
  // Writes position length() of a layer's keys and values (C each). When it
  // starts a group of kLanes positions it zeroes that group first:
  // attention_decode needs the padding after the last position to be 0.
  void Append(int layer, const float* key, const float* value);

  int block_size_;
  int channels_;         // C
  int stride_;           // block_size rounded up to a multiple of kLanes
  size_t layer_stride_;  // C * stride
  int length_ = 0;
  std::vector<float> keys_;    // [n_layer, C, stride]
  std::vector<float> values_;  // [n_layer, C, stride]
};

// Runs a Model's single-token forward. Scratch is allocated once for
// `max_batch` sequences; not thread-safe (one Decoder per thread). The model
// must outlive the decoder.
class Decoder {
 public:
  Decoder(const Model& model, int max_batch);

  const Model& model() const { return model_; }
  int max_batch() const { return max_batch_; }

  // Feeds `token` at position cache->length() and appends its key and value.
  // Writes vocab_size logits. Requires !cache->full() and 0 <= token < V.
  void Step(int token, KVCache* cache, float* logits);

  // Advances n = tokens.size() <= max_batch sequences by one token each, with
  // matrix-matrix products for the projections. logits is [n, V]. Gives the
  // same numbers as n calls of Step (up to float summation order).
  void StepBatch(absl::Span<const int> tokens,
                 absl::Span<KVCache* const> caches, float* logits);

 private:
  // One token for each of n sequences; Step is n = 1, where every matmul is
  // an sgemv.
  void Forward(const int* tokens, KVCache* const* caches, int n, float* logits);

  const Model& model_;
  int max_batch_;
  ParameterViews<const float> w_;  // the model's weights, viewed once
  // Scratch, [max_batch, ...] each (C = n_embd, H = 4C); scores_ is
  // attention_decode's [n_head * block_size + C].
  std::vector<float> x_;         // [n, C] residual stream
  std::vector<float> normed_;    // [n, C]
  std::vector<float> qkv_;       // [n, 3C]
  std::vector<float> attn_out_;  // [n, C]
  std::vector<float> hidden_;    // [n, H]
  std::vector<float> scores_;    // attention_decode's scratch
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_DECODER_H_
