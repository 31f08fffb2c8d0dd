// TrainingGraph: the batched causal forward and the hand-written backward of
// a microgpt over B documents, with every activation allocated once for
// (max_batch, block_size). A batch is padded to its longest document; padded
// positions are excluded from the loss and get no gradient.
#ifndef MICROGPT_COMMON_TRAINING_GRAPH_H_
#define MICROGPT_COMMON_TRAINING_GRAPH_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "common/config.h"
#include "common/parameters.h"

namespace microgpt {

class TrainingGraph {
 public:
  TrainingGraph(const ModelConfig& config, int max_batch);

  // docs: at most max_batch encoded documents ([BOS] + chars + [BOS], each at
  // least 2 tokens). Each contributes its first n = min(block_size, len - 1)
  // positions, predicting tokens[t + 1] from tokens[0..t]. Returns the mean
  // cross-entropy over all real target positions of the batch.
  float Forward(const float* params, absl::Span<const std::vector<int>* const> docs);

  // Writes d(mean loss)/d(params) into grads (layout().total_size() floats,
  // overwritten, not accumulated). Call after Forward with the same params.
  void Backward(const float* params, float* grads);

  const ParameterLayout& layout() const { return layout_; }
  // Real (unpadded) target tokens of the last Forward.
  int64_t num_targets() const { return num_targets_; }
  // Padded sequence length T of the last Forward.
  int padded_length() const { return T_; }
  // Logits of the last Forward, [B, T, V] (rows of padded positions are junk).
  const float* logits() const { return logits_.data(); }

 private:
  ModelConfig config_;
  ParameterLayout layout_;
  int max_batch_;
  int B_ = 0, T_ = 0;
  int64_t num_targets_ = 0;
  // Inputs of the last Forward: token and target per (b, t); target -1 = pad.
  std::vector<int> tokens_, targets_;
  // Activations, allocated once; each [max_batch * block_size, ...] per layer
  // where a layer keeps its own. Named in layers.h / training_graph.cc.
  std::vector<float> acts_, grad_acts_;
  std::vector<float> logits_;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_TRAINING_GRAPH_H_
