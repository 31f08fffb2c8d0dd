// TrainingRun: the training loop of one model. The dataset is encoded once
// (TrainingData: its split and its seeded order); each step takes the next
// batch, runs forward, backward, an optional clip of the gradient's norm and
// an Adam update. The same options and dataset give the same run, and a run
// resumed from its checkpoint continues exactly as if it had not stopped.
//
//   auto run = TrainingRun::Start(options, dataset);
//   while (!(*run)->done()) StepStats s = (*run)->Step();
//   double val_loss = (*run)->Evaluate();  // with val_fraction > 0
#ifndef MICROGPT_COMMON_TRAINING_RUN_H_
#define MICROGPT_COMMON_TRAINING_RUN_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/adam.h"
#include "common/checkpoint.h"
#include "common/config.h"
#include "common/dataset.h"
#include "common/model.h"
#include "common/process_group.h"
#include "common/tokenizer.h"
#include "common/training_data.h"
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
  AdamOptions adam;            // adam.num_steps is set from `steps`
  uint64_t seed = 42;          // initialisation and data order
  double init_std = kInitStd;  // of a new run's weights
  // Scale the gradient to this global L2 norm when it is larger; 0: never.
  float grad_clip = 0;
  double val_fraction = 0;  // held out (TrainingData), in [0, 0.5]
  // Data parallelism across processes (TrainingGraph): every rank of the
  // group runs the same run, computing its shards; null: this process
  // alone. Not owned.
  ProcessGroup* group = nullptr;

  // INVALID_ARGUMENT naming the field (sizes, steps >= 1, batch_size in
  // [1, 4096], threads in [1, 64], lr > 0, betas in [0, 1), eps > 0,
  // warmup_steps in [0, steps), min_lr in [0, lr], init_std in (0, 1],
  // grad_clip >= 0, val_fraction in [0, 0.5]).
  absl::Status Validate() const;
};

struct StepStats {
  int64_t step;     // steps done, after this one (1-based)
  float loss;       // mean cross-entropy of this step's batch
  float lr;         // learning rate used
  int64_t tokens;   // real target tokens in this step's batch
  float grad_norm;  // global L2 norm of the gradient, before any clipping
};

class TrainingRun {
 public:
  // A new run: vocabulary from the dataset, weights from the seed.
  static absl::StatusOr<std::unique_ptr<TrainingRun>> Start(
      TrainingOptions options, const Dataset& dataset);

  // A new run from a published model's weights, with a fresh optimizer: the
  // sizes and vocabulary are the model's (options.config is ignored), the
  // dataset may be another one. INVALID_ARGUMENT naming the characters of
  // the dataset that the vocabulary lacks.
  static absl::StatusOr<std::unique_ptr<TrainingRun>> StartFrom(
      TrainingOptions options, const Dataset& dataset, ModelCheckpoint model);

  // Continues from a checkpoint. The model's sizes and vocabulary come from
  // the checkpoint; the dataset (with its format and val_fraction) must be
  // the one it was trained on (FAILED_PRECONDITION otherwise). options.steps
  // may extend the run.
  static absl::StatusOr<std::unique_ptr<TrainingRun>> Resume(
      TrainingOptions options, const Dataset& dataset, ModelCheckpoint model,
      OptimizerCheckpoint optimizer);

  StepStats Step();

  // The mean cross-entropy over every target position of the validation set
  // (TrainingData::validation), with the current weights; the same weights
  // give the same number. Requires has_validation().
  double Evaluate();
  bool has_validation() const { return !data_.validation().empty(); }

  int64_t step() const { return adam_.step(); }
  bool done() const { return step() >= options_.steps; }
  const TrainingOptions& options() const { return options_; }
  // Of the dataset (TrainingData::fingerprint): equal runs, equal data.
  const std::string& dataset_fingerprint() const { return data_.fingerprint(); }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  DatasetFormat format() const { return data_.format(); }
  const ParameterLayout& layout() const { return graph_.layout(); }
  const std::vector<float>& parameters() const { return parameters_; }

  // What a published version holds; `loss` and `val_loss` are recorded in
  // its metadata.
  ModelCheckpoint ModelSnapshot(double loss,
                                std::optional<double> val_loss) const;
  OptimizerCheckpoint OptimizerSnapshot() const;

 private:
  TrainingRun(TrainingOptions options, Tokenizer tokenizer, TrainingData data);
  // Validates options against the model's sizes and builds the run.
  static absl::StatusOr<std::unique_ptr<TrainingRun>> Make(
      TrainingOptions options, const Dataset& dataset, Tokenizer tokenizer);

  TrainingOptions options_;
  Tokenizer tokenizer_;
  TrainingData data_;
  TrainingGraph graph_;
  Adam adam_;
  std::vector<float> parameters_, grads_;
  std::vector<const std::vector<int>*> batch_;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_TRAINING_RUN_H_
