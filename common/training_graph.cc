#include "common/training_graph.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "common/check.h"
#include "common/denormals.h"
#include "common/layers.h"

namespace microgpt {
namespace {

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

// A fixed set of threads that share out the indices of one function: the
// calling thread and the pool's threads each take the next index not yet
// taken until none is left. Which thread runs an index does not change what
// it computes, so results do not depend on the scheduling; and when the
// machine is busy and a pool thread is slow to wake, the caller takes its
// share instead of waiting for it. Nothing is allocated per Run.
class TrainingGraph::Workers {
 public:
  explicit Workers(int threads) {
    for (int i = 1; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~Workers() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    for (std::thread& t : threads_) t.join();
  }

  // fn(i) once for each i in [0, n); returns when all are done.
  void Run(int n, absl::FunctionRef<void(int)> fn) {
    {
      absl::MutexLock lock(&mu_);
      fn_ = &fn;
      next_ = 0;
      end_ = n;
    }
    int i;
    while ((i = Take()) >= 0) fn(i);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* running) { return *running == 0; }, &running_));
    fn_ = nullptr;
  }

 private:
  // The next index of the current Run, or -1 when every one is taken.
  int Take() {
    absl::MutexLock lock(&mu_);
    return next_ < end_ ? next_++ : -1;
  }

  void Loop() {
    FlushDenormalsOnThisThread();
    for (;;) {
      absl::FunctionRef<void(int)>* fn;
      int i;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || next_ < end_;
        };
        mu_.Await(absl::Condition(&ready));
        if (stop_) return;
        fn = fn_;
        i = next_++;
        ++running_;  // with the index taken, so that Run waits for it
      }
      (*fn)(i);
      absl::MutexLock lock(&mu_);
      --running_;
    }
  }

  absl::Mutex mu_;
  absl::FunctionRef<void(int)>* fn_ ABSL_GUARDED_BY(mu_) = nullptr;
  int next_ ABSL_GUARDED_BY(mu_) = 0;     // the next index to take
  int end_ ABSL_GUARDED_BY(mu_) = 0;      // of the current Run
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // indices the pool is running
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

TrainingGraph::TrainingGraph(const ModelConfig& config, int max_batch,
                             int threads, ProcessGroup* group)
    : config_(config),
      layout_(config),
      max_batch_(max_batch),
      group_(group),
      threads_(threads) {
  Check(threads >= 1, "TrainingGraph: threads must be >= 1");
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
  const int ranks = group == nullptr ? 1 : group->ranks();
  const int rank = group == nullptr ? 0 : group->rank();
  shards_.resize(static_cast<size_t>(threads) * ranks);
  for (int i = rank * threads; i < (rank + 1) * threads; ++i) {
    shards_[i].datt.resize(NH * T * T);
    // Shard 0 writes into Backward's output; across ranks every owned shard
    // writes into own_grads_.
    if (i > 0 && group == nullptr) {
      shards_[i].own_grads.resize(layout_.total_size());
    }
  }
  if (group != nullptr) {
    own_grads_.resize(static_cast<size_t>(threads) * layout_.total_size());
  }
  if (threads > 1) workers_ = std::make_unique<Workers>(threads);
}

std::pair<int, int> TrainingGraph::ShardsOf(int rank) const {
  const int begin = std::min(rank * threads_, num_shards_);
  return {begin, std::min(begin + threads_, num_shards_)};
}

int TrainingGraph::OwnedBegin() const {
  return ShardsOf(group_ == nullptr ? 0 : group_->rank()).first;
}

int TrainingGraph::OwnedEnd() const {
  return ShardsOf(group_ == nullptr ? 0 : group_->rank()).second;
}

std::vector<int64_t> TrainingGraph::BytesPerRank(size_t shard_bytes) const {
  std::vector<int64_t> bytes(group_->ranks());
  for (int r = 0; r < group_->ranks(); ++r) {
    const auto [begin, end] = ShardsOf(r);
    bytes[r] = static_cast<int64_t>(end - begin) * shard_bytes;
  }
  return bytes;
}

TrainingGraph::~TrainingGraph() = default;

float TrainingGraph::Forward(const float* params,
                             absl::Span<const std::vector<int>* const> docs) {
  const int V = config_.vocab_size, NH = config_.n_head;

  // Inputs: each document gives n = min(block_size, len - 1) rows, packed
  // after the previous document's.
  Check(!docs.empty() && static_cast<int>(docs.size()) <= max_batch_,
        "TrainingGraph: need 1..max_batch documents");
  B_ = static_cast<int>(docs.size());
  const int B = B_;
  // Two passes: the documents lie scattered in memory (a shuffled order),
  // and reading each one's tokens right after its size made every document
  // two cache misses in a row; sizes first, with the tokens prefetched, lets
  // the misses overlap.
  for (int b = 0; b < B; ++b) {
    const std::vector<int>& doc = *docs[b];
    Check(doc.size() >= 2, "TrainingGraph: a document needs at least 2 tokens");
    __builtin_prefetch(doc.data());
    offsets_[b + 1] = offsets_[b] + std::min(config_.block_size,
                                             static_cast<int>(doc.size()) - 1);
  }
  for (int b = 0; b < B; ++b) {
    const int* doc = docs[b]->data();
    int* tok = tokens_.data() + offsets_[b];
    int* tgt = targets_.data() + offsets_[b];
    for (int t = 0; t < offsets_[b + 1] - offsets_[b]; ++t) {
      Check(doc[t] >= 0 && doc[t] < V && doc[t + 1] >= 0 && doc[t + 1] < V,
            "TrainingGraph: token out of range");
      tok[t] = doc[t];
      tgt[t] = doc[t + 1];
    }
  }
  const int N = offsets_[B];

  // Shards: runs of whole documents with about N / shards rows each, at least
  // one document each. They depend only on the batch, so a batch gives the
  // same numbers however the threads are scheduled.
  num_shards_ = std::min<int>(shards_.size(), B);
  int b = 0;
  int64_t att_offset = 0;  // of the shard's first document in att
  for (int k = 0; k < num_shards_; ++k) {
    Shard& s = shards_[k];
    s.b0 = b;
    s.att_offset = att_offset;
    const int64_t target = static_cast<int64_t>(N) * (k + 1) / num_shards_;
    do {
      const int64_t n = offsets_[b + 1] - offsets_[b];
      att_offset += NH * n * n;
      ++b;
    } while (b < B - (num_shards_ - 1 - k) && offsets_[b] < target);
    s.b1 = b;
  }

  const int first = OwnedBegin(), owned = OwnedEnd() - first;
  if (owned == 1) {
    ForwardShard(params, shards_[first]);
  } else if (owned > 1) {
    workers_->Run(owned,
                  [&](int k) { ForwardShard(params, shards_[first + k]); });
  }
  if (group_ != nullptr) GatherLosses();
  double loss = 0;
  for (int k = 0; k < num_shards_; ++k) loss += shards_[k].loss;
  return static_cast<float>(loss / N);
}

void TrainingGraph::GatherLosses() {
  const std::vector<int64_t> bytes = BytesPerRank(sizeof(double));
  const int first = OwnedBegin(), owned = OwnedEnd() - first;
  std::vector<double> mine(owned);
  for (int k = 0; k < owned; ++k) mine[k] = shards_[first + k].loss;
  all_losses_.resize(num_shards_);
  group_->AllGather(mine.data(), bytes, all_losses_.data());
  for (int k = 0; k < num_shards_; ++k) shards_[k].loss = all_losses_[k];
}

void TrainingGraph::ForwardShard(const float* params, Shard& shard) {
  const int C = config_.n_embd, H = 4 * C, NH = config_.n_head;
  const int V = config_.vocab_size;
  const int r0 = offsets_[shard.b0], N = offsets_[shard.b1] - r0;
  const int nb = shard.b1 - shard.b0;
  const int* offsets = offsets_.data() + shard.b0;
  // Row r0 of each [rows, width] buffer.
  auto row = [r0](std::vector<float>& v, int width) {
    return v.data() + static_cast<size_t>(r0) * width;
  };

  const Tensors<const float> w{layout_, params};
  float* x = row(x_, C);
  float* encoded = row(encoded_, C);
  // x = rmsnorm(wte[tok] + wpe[t])                          (N, C)
  for (int b = shard.b0; b < shard.b1; ++b) {
    embedding_forward(encoded_.data() + static_cast<size_t>(offsets_[b]) * C,
                      tokens_.data() + offsets_[b], w.wte(), w.wpe(), 1,
                      offsets_[b + 1] - offsets_[b], C);
  }
  rmsnorm_forward(encoded, encoded_rstd_.data() + r0, encoded, N, C);
  std::memcpy(x, encoded, sizeof(float) * N * C);
  for (int l = 0; l < config_.n_layer; ++l) {
    LayerActivations& a = layers_[l];
    float* ln1 = row(a.ln1, C);
    float* qkv = row(a.qkv, 3 * C);
    float* atty = row(a.atty, C);
    float* ln2 = row(a.ln2, C);
    float* fch = row(a.fch, H);
    // x += attention(rmsnorm(x)) Wo^T
    rmsnorm_forward(ln1, a.ln1_rstd.data() + r0, x, N, C);
    matmul_forward(qkv, ln1, w.attn_wqkv(l), N, C, 3 * C);
    // (attention takes absolute row offsets, so whole buffers)
    attention_forward(a.atty.data(), a.att.data() + shard.att_offset,
                      a.qkv.data(), offsets, nb, C, NH);
    matmul_forward(x, atty, w.attn_wo(l), N, C, C, /*accumulate=*/true);
    // x += relu(rmsnorm(x) fc1^T) fc2^T
    rmsnorm_forward(ln2, a.ln2_rstd.data() + r0, x, N, C);
    matmul_forward(fch, ln2, w.mlp_fc1(l), N, C, H);
    relu_forward(fch, fch, N * H);
    matmul_forward(x, fch, w.mlp_fc2(l), N, H, C, /*accumulate=*/true);
  }
  // logits = x lm_head^T (no final norm)                    (N, V)
  float* logits = row(logits_, V);
  matmul_forward(logits, x, w.lm_head(), N, C, V);
  shard.loss =
      crossentropy_forward(row(probs_, V), logits, targets_.data() + r0, N, V);
}

void TrainingGraph::Backward(const float* params, float* grads) {
  Check(B_ > 0, "TrainingGraph: Backward needs a Forward first");
  if (group_ != nullptr) {
    const size_t P = layout_.total_size();
    const int first = OwnedBegin(), owned = OwnedEnd() - first;
    for (int k = 0; k < owned; ++k) {
      shards_[first + k].grads = own_grads_.data() + k * P;
    }
    if (owned == 1) {
      BackwardShard(params, shards_[first]);
    } else if (owned > 1) {
      workers_->Run(owned,
                    [&](int k) { BackwardShard(params, shards_[first + k]); });
    }
    GatherGradients(grads);
    return;
  }
  shards_[0].grads = grads;
  for (int k = 1; k < num_shards_; ++k) {
    shards_[k].grads = shards_[k].own_grads.data();
  }
  if (num_shards_ == 1) {
    BackwardShard(params, shards_[0]);
    return;
  }
  // Each shard's weight gradients are the sum over its own rows; the step's
  // are their sum, in shard order, each thread adding up one slice.
  workers_->Run(num_shards_, [&](int k) { BackwardShard(params, shards_[k]); });
  const size_t P = layout_.total_size();
  workers_->Run(num_shards_, [&](int k) {
    const size_t begin = P * k / num_shards_, end = P * (k + 1) / num_shards_;
    for (int j = 1; j < num_shards_; ++j) {
      const float* src = shards_[j].grads;
      for (size_t i = begin; i < end; ++i) grads[i] += src[i];
    }
  });
}

// The sum in shard order, element by element, as the threads of one process
// add their shards: grads = g_0, then += g_1, += g_2, ...
void TrainingGraph::GatherGradients(float* grads) {
  const size_t P = layout_.total_size();
  const std::vector<int64_t> bytes = BytesPerRank(P * sizeof(float));
  all_grads_.resize(static_cast<size_t>(num_shards_) * P);
  group_->AllGather(own_grads_.data(), bytes, all_grads_.data());
  std::copy(all_grads_.begin(), all_grads_.begin() + P, grads);
  auto add = [&](size_t begin, size_t end) {
    for (int j = 1; j < num_shards_; ++j) {
      const float* src = all_grads_.data() + j * P;
      for (size_t i = begin; i < end; ++i) grads[i] += src[i];
    }
  };
  if (workers_ == nullptr) {
    add(0, P);
    return;
  }
  workers_->Run(threads_,
                [&](int k) { add(P * k / threads_, P * (k + 1) / threads_); });
}

void TrainingGraph::BackwardShard(const float* params, Shard& shard) {
  const int C = config_.n_embd, H = 4 * C, NH = config_.n_head;
  const int V = config_.vocab_size;
  const int r0 = offsets_[shard.b0], N = offsets_[shard.b1] - r0;
  const int nb = shard.b1 - shard.b0;
  const int* offsets = offsets_.data() + shard.b0;
  auto row = [r0](std::vector<float>& v, int width) {
    return v.data() + static_cast<size_t>(r0) * width;
  };
  const Tensors<const float> w{layout_, params};
  const Tensors<float> g{layout_, shard.grads};
  float* dx = row(dx_, C);
  float* dln = row(dln_, C);
  float* datty = row(datty_, C);
  float* dfch = row(dfch_, H);
  float* dqkv = row(dqkv_, 3 * C);
  float* dlogits = row(dlogits_, V);
  float* x = row(x_, C);

  // loss = mean over all rows of the batch of cross-entropy(logits)
  crossentropy_backward(dlogits, row(probs_, V), targets_.data() + r0,
                        1.0f / static_cast<float>(offsets_[B_]), N, V);
  // logits = x lm_head^T
  matmul_backward(dx, g.lm_head(), dlogits, x, w.lm_head(), N, C, V);
  for (int l = config_.n_layer - 1; l >= 0; --l) {
    LayerActivations& a = layers_[l];
    float* ln1 = row(a.ln1, C);
    float* ln2 = row(a.ln2, C);
    float* fch = row(a.fch, H);
    // x += relu(rmsnorm(x) fc1^T) fc2^T
    matmul_backward(dfch, g.mlp_fc2(l), dx, fch, w.mlp_fc2(l), N, H, C);
    relu_backward(dfch, dfch, fch, N * H);
    matmul_backward(dln, g.mlp_fc1(l), dfch, ln2, w.mlp_fc1(l), N, C, H);
    rmsnorm_backward(dx, dln, ln2, a.ln2_rstd.data() + r0, N, C);
    // x += attention(rmsnorm(x)) Wo^T
    matmul_backward(datty, g.attn_wo(l), dx, row(a.atty, C), w.attn_wo(l), N, C,
                    C);
    attention_backward(dqkv_.data(), shard.datt.data(), datty_.data(),
                       a.att.data() + shard.att_offset, a.qkv.data(), offsets,
                       nb, C, NH);
    matmul_backward(dln, g.attn_wqkv(l), dqkv, ln1, w.attn_wqkv(l), N, C,
                    3 * C);
    rmsnorm_backward(dx, dln, ln1, a.ln1_rstd.data() + r0, N, C);
  }
  // x = rmsnorm(wte[tok] + wpe[t])
  std::memset(dln, 0, sizeof(float) * N * C);
  rmsnorm_backward(dln, dx, row(encoded_, C), encoded_rstd_.data() + r0, N, C);
  std::memset(g.wte(), 0, sizeof(float) * config_.vocab_size * C);
  std::memset(g.wpe(), 0, sizeof(float) * config_.block_size * C);
  for (int b = shard.b0; b < shard.b1; ++b) {
    embedding_backward(
        g.wte(), g.wpe(), dln_.data() + static_cast<size_t>(offsets_[b]) * C,
        tokens_.data() + offsets_[b], 1, offsets_[b + 1] - offsets_[b], C);
  }
}

}  // namespace microgpt
