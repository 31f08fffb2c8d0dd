// TrainingRun: the training loop of one model. Documents are encoded once,
// shuffled with a seeded Rng and visited in epochs; each step takes the next
// batch_size documents, runs forward, backward and an Adam update. The same
// options and documents give the same run, and a run resumed from its
// checkpoint continues exactly as if it had not stopped.
//
//   auto run = TrainingRun::Start(options, documents);
//   while (!(*run)->done()) StepStats s = (*run)->Step();
#ifndef MICROGPT_COMMON_TRAINING_RUN_H_
#define MICROGPT_COMMON_TRAINING_RUN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/adam.h"
#include "common/checkpoint.h"
#include "common/config.h"
#include "common/rng.h"
#include "common/tokenizer.h"
#include "common/training_graph.h"

namespace microgpt {

struct TrainingOptions {
  // Sizes; vocab_size is taken from the dataset (or the resumed checkpoint).
  ModelConfig config;
  int64_t steps = 1000;  // total steps of the run (the lr decay horizon)
  int batch_size = 1;
  // Threads of the forward and backward (TrainingGraph's shards). More than
  // one pays for large batches of wide models, with OpenBLAS single-threaded;
  // the numbers depend on it (float summation order), so a resumed run should
  // keep it.
  int threads = 1;
  AdamOptions adam;    // adam.num_steps is set from `steps`
  uint64_t seed = 42;  // initialisation and data order

  // INVALID_ARGUMENT naming the field (sizes, steps >= 1, batch_size in
  // [1, 4096], threads in [1, 64], lr > 0, betas in [0, 1), eps > 0).
  absl::Status Validate() const;
};

struct StepStats {
  int64_t step;    // steps done, after this one (1-based)
  float loss;      // mean cross-entropy of this step's batch
  float lr;        // learning rate used
  int64_t tokens;  // real target tokens in this step's batch
};

class TrainingRun {
 public:
  // A new run: vocabulary from the documents, weights from the seed.
  static absl::StatusOr<std::unique_ptr<TrainingRun>> Start(
      TrainingOptions options, const std::vector<std::string>& documents);

  // Continues from a checkpoint. The model's sizes and vocabulary come from
  // the checkpoint; the documents must be the ones it was trained on
  // (FAILED_PRECONDITION otherwise). options.steps may extend the run.
  static absl::StatusOr<std::unique_ptr<TrainingRun>> Resume(
      TrainingOptions options, const std::vector<std::string>& documents,
      ModelCheckpoint model, OptimizerCheckpoint optimizer);

  StepStats Step();

  int64_t step() const { return adam_.step(); }
  bool done() const { return step() >= options_.steps; }
  const TrainingOptions& options() const { return options_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  const ParameterLayout& layout() const { return graph_.layout(); }
  const std::vector<float>& parameters() const { return parameters_; }

  // What a published version holds; `loss` is recorded in its metadata.
  ModelCheckpoint ModelSnapshot(double loss) const;
  OptimizerCheckpoint OptimizerSnapshot() const;

 private:
  TrainingRun(TrainingOptions options, Tokenizer tokenizer,
              std::vector<std::vector<int>> documents,
              std::string dataset_sha256);
  void NextEpoch();

  TrainingOptions options_;
  Tokenizer tokenizer_;
  std::vector<std::vector<int>> documents_;  // encoded, [BOS]+chars+[BOS]
  std::string dataset_sha256_;
  TrainingGraph graph_;
  Adam adam_;
  std::vector<float> parameters_, grads_;
  Rng data_rng_;
  std::vector<int32_t> order_;
  int64_t epoch_ = 0, cursor_ = 0;
  std::vector<const std::vector<int>*> batch_;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_TRAINING_RUN_H_
