// Inference over a per-sequence KV cache (docs/model.md's forward for a token
// at position t): one token at a time, a batched step that advances many
// independent sequences, each at its own position, by one token in one call,
// and a prefill that feeds many consecutive tokens of one sequence in one call.
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
  // Empties the cache; the next token goes at position 0. The old keys and
  // values are overwritten group by group as positions are written again.
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
  // Writes `position` of a layer's keys and values (C each). When it starts a
  // group of kLanes positions it zeroes that group first: attention_decode
  // needs the padding after the last position to be 0, so positions are
  // written in increasing order.
  void Write(int layer, int position, const float* key, const float* value);

  int block_size_;
  int channels_;         // C
  int stride_;           // block_size rounded up to a multiple of kLanes
  size_t layer_stride_;  // C * stride
  int length_ = 0;
  std::vector<float> keys_;    // [n_layer, C, stride]
  std::vector<float> values_;  // [n_layer, C, stride]
};

// Runs a Model's forward over a KV cache. Scratch is allocated once for
// `max_rows` rows (tokens fed in one call); not thread-safe (one Decoder per
// thread). The model must outlive the decoder.
class Decoder {
 public:
  Decoder(const Model& model, int max_rows);

  const Model& model() const { return model_; }
  int max_rows() const { return max_rows_; }

  // Feeds `token` at position cache->length() and appends its key and value.
  // Writes vocab_size logits. Requires !cache->full() and 0 <= token < V.
  void Step(int token, KVCache* cache, float* logits);

  // Advances n = tokens.size() <= max_rows distinct sequences by one token
  // each, with matrix-matrix products for the projections. logits is [n, V].
  // Gives the same numbers as n calls of Step (up to float summation order).
  void StepBatch(absl::Span<const int> tokens,
                 absl::Span<KVCache* const> caches, float* logits);

  // Which rows of logits Prefill writes.
  enum class PrefillLogits {
    kLast,  // [V]: the last token's, what sampling the next token needs
    kAll,   // [n, V]: every token's (one more row of lm_head per token)
  };
  // Feeds n = tokens.size() <= max_rows tokens of one sequence at positions
  // cache->length() .. cache->length() + n - 1 as one multi-row forward, with
  // matrix-matrix products for the projections, and appends their keys and
  // values; each token attends causally over the cache and the tokens before
  // it. Gives the same numbers as n calls of Step (up to float summation
  // order). Requires n >= 1, cache->length() + n <= block_size and every
  // token in [0, V).
  void Prefill(absl::Span<const int> tokens, KVCache* cache,
               PrefillLogits which, float* logits);

 private:
  // The forward of the n rows staged in rows_: row i feeds token
  // rows_[i].token at position rows_[i].position of *rows_[i].cache. Rows of
  // one cache come in increasing consecutive positions, the first at its
  // length(). Step is n = 1, where every matmul is an sgemv.
  void Forward(int n, PrefillLogits which, float* logits);

  struct Row {
    int token;
    int position;
    KVCache* cache;
  };

  const Model& model_;
  int max_rows_;
  ParameterViews<const float> w_;  // the model's weights, viewed once
  // Scratch, [max_rows, ...] each (C = n_embd, H = 4C); scores_ is
  // attention_decode's [n_head, RoundUpToLanes(block_size)].
  std::vector<Row> rows_;        // [n]
  std::vector<float> x_;         // [n, C] residual stream
  std::vector<float> normed_;    // [n, C]
  std::vector<float> qkv_;       // [n, 3C]
  std::vector<float> attn_out_;  // [n, C]
  std::vector<float> hidden_;    // [n, H]
  std::vector<float> scores_;    // attention_decode's scratch
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_DECODER_H_
