#include "common/training_run.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/model.h"
#include "common/status_macros.h"

namespace microgpt {
namespace {

// The characters of `dataset` that `tokenizer` lacks, as a readable list.
std::string MissingCharacters(const Dataset& dataset,
                              const Tokenizer& tokenizer) {
  const Tokenizer needed = TokenizerFor(dataset);
  std::vector<std::string> missing;
  for (char32_t c : needed.chars()) {
    if (!std::binary_search(tokenizer.chars().begin(), tokenizer.chars().end(),
                            c)) {
      missing.push_back(CharacterName(c));
    }
  }
  return absl::StrJoin(missing, ", ");
}

}  // namespace

absl::Status TrainingOptions::Validate() const {
  ModelConfig sizes = config;
  sizes.vocab_size = 2;  // the dataset decides; checked again once it is known
  MICROGPT_RETURN_IF_ERROR(sizes.Validate());
  if (steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps must be >= 1, got ", steps));
  }
  if (batch_size < 1 || batch_size > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be in [1, 4096], got ", batch_size));
  }
  if (threads < 1 || threads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must be in [1, 64], got ", threads));
  }
  if (!(adam.lr > 0.0f) || !std::isfinite(adam.lr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lr must be a finite number > 0, got ", adam.lr));
  }
  if (!(adam.beta1 >= 0.0f && adam.beta1 < 1.0f) ||
      !(adam.beta2 >= 0.0f && adam.beta2 < 1.0f)) {
    return absl::InvalidArgumentError("beta1 and beta2 must be in [0, 1)");
  }
  if (!(adam.eps > 0.0f)) {
    return absl::InvalidArgumentError("eps must be > 0");
  }
  if (adam.warmup_steps < 0 || adam.warmup_steps >= steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("warmup_steps must be in [0, steps = ", steps, "), got ",
                     adam.warmup_steps));
  }
  if (!(adam.min_lr >= 0.0f && adam.min_lr <= adam.lr)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "min_learning_rate must be in [0, learning_rate = ", adam.lr, "], got ",
        adam.min_lr));
  }
  if (!(init_std > 0.0 && init_std <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("init_std must be in (0, 1], got ", init_std));
  }
  if (!(grad_clip >= 0.0f) || !std::isfinite(grad_clip)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grad_clip must be a finite number >= 0 (0: no clipping), got ",
        grad_clip));
  }
  if (!(val_fraction >= 0.0 && val_fraction <= 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "val_fraction must be in [0, 0.5] (0: no validation), got ",
        val_fraction));
  }
  return absl::OkStatus();
}

TrainingRun::TrainingRun(TrainingOptions options, Tokenizer tokenizer,
                         TrainingData data)
    : options_(options),
      tokenizer_(std::move(tokenizer)),
      data_(std::move(data)),
      graph_(options_.config, options_.batch_size, options_.threads,
             options_.group),
      adam_(options_.adam, graph_.layout().total_size()),
      parameters_(graph_.layout().total_size()),
      grads_(graph_.layout().total_size()) {
  batch_.reserve(options_.batch_size);
}

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingRun::Make(
    TrainingOptions options, const Dataset& dataset, Tokenizer tokenizer) {
  options.config.vocab_size = tokenizer.vocab_size();
  MICROGPT_RETURN_IF_ERROR(options.Validate());
  MICROGPT_RETURN_IF_ERROR(options.config.Validate());
  options.adam.num_steps = options.steps;
  MICROGPT_ASSIGN_OR_RETURN(
      TrainingData data,
      TrainingData::Make(dataset, tokenizer, options.val_fraction,
                         options.config.block_size, options.seed));
  return std::unique_ptr<TrainingRun>(
      new TrainingRun(options, std::move(tokenizer), std::move(data)));
}

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingRun::Start(
    TrainingOptions options, const Dataset& dataset) {
  MICROGPT_RETURN_IF_ERROR(options.Validate());
  MICROGPT_ASSIGN_OR_RETURN(
      std::unique_ptr<TrainingRun> run,
      Make(std::move(options), dataset, TokenizerFor(dataset)));
  InitializeParameters(run->options_.seed, run->parameters_,
                       run->options_.init_std);
  return run;
}

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingRun::StartFrom(
    TrainingOptions options, const Dataset& dataset, ModelCheckpoint model) {
  options.config = model.config;
  if (const std::string missing = MissingCharacters(dataset, model.tokenizer);
      !missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the dataset has characters the model's vocabulary lacks: ", missing,
        " (fine-tuning keeps the vocabulary; train a new model instead)"));
  }
  const size_t num_parameters = ParameterLayout(model.config).total_size();
  if (model.parameters.size() != num_parameters) {
    return absl::FailedPreconditionError(
        "the model's weights do not match its config");
  }
  MICROGPT_ASSIGN_OR_RETURN(
      std::unique_ptr<TrainingRun> run,
      Make(std::move(options), dataset, std::move(model.tokenizer)));
  run->parameters_ = std::move(model.parameters);
  return run;
}

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingRun::Resume(
    TrainingOptions options, const Dataset& dataset, ModelCheckpoint model,
    OptimizerCheckpoint optimizer) {
  options.config = model.config;
  MICROGPT_RETURN_IF_ERROR(options.Validate());
  if (options.steps < optimizer.adam_step) {
    return absl::InvalidArgumentError(
        absl::StrFormat("steps (%d) is below the checkpoint's step (%d)",
                        options.steps, optimizer.adam_step));
  }
  if (dataset.format != model.format) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the checkpoint was trained on a ", DatasetFormatName(model.format),
        " dataset, not ", DatasetFormatName(dataset.format)));
  }
  const size_t num_parameters = ParameterLayout(model.config).total_size();
  if (model.parameters.size() != num_parameters ||
      optimizer.m.size() != num_parameters ||
      optimizer.v.size() != num_parameters) {
    return absl::FailedPreconditionError(
        "the optimizer state does not match the model");
  }
  MICROGPT_ASSIGN_OR_RETURN(
      std::unique_ptr<TrainingRun> run,
      Make(std::move(options), dataset, std::move(model.tokenizer)));
  MICROGPT_RETURN_IF_ERROR(run->data_.RestoreOrder(optimizer));
  run->parameters_ = std::move(model.parameters);
  run->adam_.Restore(std::move(optimizer.m), std::move(optimizer.v),
                     optimizer.adam_step);
  return run;
}

StepStats TrainingRun::Step() {
  data_.NextBatch(options_.batch_size, &batch_);
  const float loss = graph_.Forward(parameters_.data(), batch_);
  graph_.Backward(parameters_.data(), grads_.data());
  double sum_of_squares = 0;
  for (const float g : grads_) sum_of_squares += static_cast<double>(g) * g;
  const float grad_norm = static_cast<float>(std::sqrt(sum_of_squares));
  if (options_.grad_clip > 0 && grad_norm > options_.grad_clip) {
    const float scale = options_.grad_clip / grad_norm;
    for (float& g : grads_) g *= scale;
  }
  const float lr = adam_.Update(parameters_.data(), grads_.data());
  return {adam_.step(), loss, lr, graph_.num_targets(), grad_norm};
}

double TrainingRun::Evaluate() {
  // Forward only, in batches the graph has room for; each batch's mean
  // weighted by its targets gives the mean over every position.
  const std::vector<std::vector<int>>& sequences = data_.validation();
  double total = 0;
  for (size_t first = 0; first < sequences.size();
       first += options_.batch_size) {
    const size_t n =
        std::min<size_t>(options_.batch_size, sequences.size() - first);
    batch_.clear();
    for (size_t i = 0; i < n; ++i) batch_.push_back(&sequences[first + i]);
    const float mean = graph_.Forward(parameters_.data(), batch_);
    total += static_cast<double>(mean) * graph_.num_targets();
  }
  return total / static_cast<double>(data_.validation_targets());
}

ModelCheckpoint TrainingRun::ModelSnapshot(
    double loss, std::optional<double> val_loss) const {
  return {options_.config, tokenizer_, parameters_, step(), loss,
          format(),        val_loss};
}

OptimizerCheckpoint TrainingRun::OptimizerSnapshot() const {
  OptimizerCheckpoint state;
  state.adam_step = adam_.step();
  state.m = adam_.m();
  state.v = adam_.v();
  data_.SaveOrder(&state);
  return state;
}

}  // namespace microgpt
