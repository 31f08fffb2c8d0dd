// TrainingGraph: the batched causal forward and the hand-written backward of
// a microgpt over B documents, with every activation allocated once for
// max_batch * block_size rows. A batch is packed: the documents' positions lie
// back to back as rows, with no padding, and each document attends only to
// its own rows. Nothing is allocated per step.
//
// With threads > 1 a batch is cut into that many shards of whole documents
// with about equal rows; the threads share out the shards, running the
// forward and backward of a shard's rows into that shard's own weight
// gradients, summed in shard order at the end. Results depend on the batch
// and the thread count only, not on which thread ran what. The products
// inside a shard are single sgemm calls, so OpenBLAS should run
// single-threaded then (BlasThreadsFor in common/blas_threads.h): the shards
// are the parallelism, with one hand-off per phase instead of one per product.
#ifndef MICROGPT_COMMON_TRAINING_GRAPH_H_
#define MICROGPT_COMMON_TRAINING_GRAPH_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "common/config.h"
#include "common/parameters.h"
#include "common/process_group.h"

namespace microgpt {

class TrainingGraph {
 public:
  // With a process group, the batch's shards are shared out among its
  // ranks, `threads` consecutive shards each (ranks * threads in all); a
  // rank computes only its own, and every shard's loss and weight gradients
  // are gathered to every rank, which sums them in shard order as the
  // threads of one process do. So R ranks of T threads give the numbers of
  // one process of R * T threads, bit for bit. Every rank must pass the
  // same batch.
  TrainingGraph(const ModelConfig& config, int max_batch, int threads = 1,
                ProcessGroup* group = nullptr);
  ~TrainingGraph();

  // docs: at most max_batch encoded documents ([BOS] + chars + [BOS], each at
  // least 2 tokens). Each contributes its first n = min(block_size, len - 1)
  // positions, predicting tokens[t + 1] from tokens[0..t]. Returns the mean
  // cross-entropy over all target positions of the batch.
  float Forward(const float* params,
                absl::Span<const std::vector<int>* const> docs);

  // Writes d(mean loss)/d(params) into grads (layout().total_size() floats,
  // overwritten, not accumulated). Call after Forward with the same params.
  void Backward(const float* params, float* grads);

  const ParameterLayout& layout() const { return layout_; }
  // Target tokens of the last Forward: its rows, sum of the documents' n.
  int64_t num_targets() const { return offsets_[B_]; }
  // The first row of document b of the last Forward; its n positions are
  // rows row_offset(b) .. row_offset(b + 1) - 1.
  int row_offset(int b) const { return offsets_[b]; }
  // Logits of the last Forward, [num_targets(), V].
  const float* logits() const { return logits_.data(); }

 private:
  class Workers;
  // A run of whole documents [b0, b1), rows offsets_[b0] .. offsets_[b1] - 1.
  struct Shard {
    int b0 = 0, b1 = 0;
    int64_t att_offset = 0;  // of document b0's blocks in each layer's att
    double loss = 0;         // summed cross-entropy of its rows
    float* grads = nullptr;  // its weight gradients: Backward's output for
                             // shard 0, own_grads for the others
    std::vector<float> own_grads;
    std::vector<float> datt;  // [NH, T, T]: scratch of attention_backward
  };
  void ForwardShard(const float* params, Shard& shard);
  void BackwardShard(const float* params, Shard& shard);

  ModelConfig config_;
  ParameterLayout layout_;
  int max_batch_;
  int B_ = 0;
  // Inputs of the last Forward, packed: document b is rows
  // [offsets_[b], offsets_[b + 1]); token and target per row.
  std::vector<int> offsets_;  // [B + 1]
  std::vector<int> tokens_, targets_;

  // Activations, allocated once for max_batch * block_size rows and used as
  // the first N = num_targets() rows. C = n_embd, H = 4C.
  struct LayerActivations {
    std::vector<float> ln1, ln1_rstd;  // [N, C], [N]: rmsnorm(x) into attention
    std::vector<float> qkv;            // [N, 3C]
    std::vector<float> att;            // per document [NH, n, n]: softmax
    std::vector<float> atty;           // [N, C]: attention output, before Wo
    std::vector<float> ln2, ln2_rstd;  // [N, C], [N]: rmsnorm(x) into the MLP
    std::vector<float> fch;            // [N, H]: relu(ln2 fc1^T)
  };
  std::vector<LayerActivations> layers_;
  std::vector<float> encoded_, encoded_rstd_;  // [N, C], [N]: the first x
  std::vector<float> x_;       // [N, C]: residual stream, ends as lm_head input
  std::vector<float> logits_;  // [N, V]
  std::vector<float> probs_;   // [N, V]: softmax(logits)
  // Gradients of activations, shared by the layers.
  std::vector<float> dx_;       // [N, C]: residual stream
  std::vector<float> dln_;      // [N, C]: into either rmsnorm
  std::vector<float> datty_;    // [N, C]
  std::vector<float> dfch_;     // [N, H]
  std::vector<float> dqkv_;     // [N, 3C]
  std::vector<float> dlogits_;  // [N, V]

  // The shards of the last Forward this process computes, [begin, end);
  // without a group, all.
  int OwnedBegin() const;
  int OwnedEnd() const;
  // Rank r's shards of the last Forward, [first, second): threads_
  // consecutive ones from r * threads_, cut at num_shards_.
  std::pair<int, int> ShardsOf(int rank) const;
  // What each rank sends when each of its shards is `shard_bytes`.
  std::vector<int64_t> BytesPerRank(size_t shard_bytes) const;
  // Across ranks: every shard's loss, then every shard's gradients gathered
  // into all_grads_ and summed in shard order into grads.
  void GatherLosses();
  void GatherGradients(float* grads);

  ProcessGroup* const group_;  // may be null
  const int threads_;
  // One per shard of all ranks (threads * ranks); only the owned ones have
  // scratch and gradient buffers.
  std::vector<Shard> shards_;
  int num_shards_ = 0;  // used by the last Forward: min(shards, B)
  std::unique_ptr<Workers> workers_;  // threads - 1 threads, when threads > 1
  // With a group: the owned shards' gradients, contiguous (what this
  // rank sends), and every shard's (what it receives), [num_shards_, P].
  std::vector<float> own_grads_;
  std::vector<float> all_grads_;
  std::vector<double> all_losses_;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_TRAINING_GRAPH_H_
