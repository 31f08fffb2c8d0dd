#include "common/training_run.h"

#include <cmath>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/model.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace microgpt {
namespace {

// The data order has its own stream, apart from the initialisation's.
constexpr uint64_t kDataSeedOffset = 0x9e3779b97f4a7c15ULL;

absl::StatusOr<std::string> DatasetFingerprint(
    const std::vector<std::string>& documents) {
  Sha256Hasher hasher;
  for (const std::string& doc : documents) {
    hasher.Update(doc);
    hasher.Update("\n");
  }
  return hasher.HexDigest();
}

absl::StatusOr<std::vector<std::vector<int>>> EncodeAll(
    const Tokenizer& tokenizer, const std::vector<std::string>& documents) {
  std::vector<std::vector<int>> encoded;
  encoded.reserve(documents.size());
  for (size_t i = 0; i < documents.size(); ++i) {
    absl::StatusOr<std::vector<int>> doc =
        tokenizer.EncodeDocument(documents[i]);
    if (!doc.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("document ", i + 1, ": ", doc.status().message()));
    }
    encoded.push_back(*std::move(doc));
  }
  return encoded;
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
  return absl::OkStatus();
}

TrainingRun::TrainingRun(TrainingOptions options, Tokenizer tokenizer,
                         std::vector<std::vector<int>> documents,
                         std::string dataset_sha256)
    : options_(options),
      tokenizer_(std::move(tokenizer)),
      documents_(std::move(documents)),
      dataset_sha256_(std::move(dataset_sha256)),
      graph_(options_.config, options_.batch_size, options_.threads),
      adam_(options_.adam, graph_.layout().total_size()),
      parameters_(graph_.layout().total_size()),
      grads_(graph_.layout().total_size()),
      data_rng_(options_.seed + kDataSeedOffset) {
  batch_.reserve(options_.batch_size);
}

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingRun::Start(
    TrainingOptions options, const std::vector<std::string>& documents) {
  MICROGPT_RETURN_IF_ERROR(options.Validate());
  if (documents.empty()) {
    return absl::InvalidArgumentError("the dataset has no documents");
  }
  Tokenizer tokenizer = Tokenizer::FromDocuments(documents);
  options.config.vocab_size = tokenizer.vocab_size();
  MICROGPT_RETURN_IF_ERROR(options.config.Validate());
  options.adam.num_steps = options.steps;
  MICROGPT_ASSIGN_OR_RETURN(std::vector<std::vector<int>> encoded,
                            EncodeAll(tokenizer, documents));
  MICROGPT_ASSIGN_OR_RETURN(std::string fingerprint,
                            DatasetFingerprint(documents));
  std::unique_ptr<TrainingRun> run(
      new TrainingRun(options, std::move(tokenizer), std::move(encoded),
                      std::move(fingerprint)));
  InitializeParameters(run->options_.seed, run->parameters_);
  run->NextEpoch();
  return run;
}

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingRun::Resume(
    TrainingOptions options, const std::vector<std::string>& documents,
    ModelCheckpoint model, OptimizerCheckpoint optimizer) {
  options.config = model.config;
  MICROGPT_RETURN_IF_ERROR(options.Validate());
  if (options.steps < optimizer.adam_step) {
    return absl::InvalidArgumentError(
        absl::StrFormat("steps (%d) is below the checkpoint's step (%d)",
                        options.steps, optimizer.adam_step));
  }
  MICROGPT_ASSIGN_OR_RETURN(std::string fingerprint,
                            DatasetFingerprint(documents));
  if (fingerprint != optimizer.dataset_sha256) {
    return absl::FailedPreconditionError(
        "the dataset differs from the one the checkpoint was trained on");
  }
  const size_t num_parameters = ParameterLayout(model.config).total_size();
  if (model.parameters.size() != num_parameters ||
      optimizer.m.size() != num_parameters ||
      optimizer.v.size() != num_parameters ||
      optimizer.data_order.size() != documents.size() ||
      optimizer.data_cursor < 0 ||
      optimizer.data_cursor > static_cast<int64_t>(documents.size())) {
    return absl::FailedPreconditionError(
        "the optimizer state does not match the model and dataset");
  }
  for (int32_t index : optimizer.data_order) {
    if (index < 0 || index >= static_cast<int64_t>(documents.size())) {
      return absl::FailedPreconditionError(
          "the optimizer state's data order is out of range");
    }
  }
  options.adam.num_steps = options.steps;
  MICROGPT_ASSIGN_OR_RETURN(std::vector<std::vector<int>> encoded,
                            EncodeAll(model.tokenizer, documents));
  std::unique_ptr<TrainingRun> run(new TrainingRun(
      options, std::move(model.tokenizer), std::move(encoded), fingerprint));
  run->parameters_ = std::move(model.parameters);
  run->adam_.Restore(std::move(optimizer.m), std::move(optimizer.v),
                     optimizer.adam_step);
  run->order_ = std::move(optimizer.data_order);
  run->epoch_ = optimizer.data_epoch;
  run->cursor_ = optimizer.data_cursor;
  run->data_rng_ = Rng::FromState(optimizer.rng_state);
  return run;
}

void TrainingRun::NextEpoch() {
  // Fisher-Yates over the document indices.
  order_.resize(documents_.size());
  std::iota(order_.begin(), order_.end(), 0);
  for (size_t i = order_.size(); i > 1; --i) {
    std::swap(order_[i - 1], order_[data_rng_.UniformInt(i)]);
  }
  cursor_ = 0;
}

StepStats TrainingRun::Step() {
  batch_.clear();
  for (int b = 0; b < options_.batch_size; ++b) {
    if (cursor_ == static_cast<int64_t>(order_.size())) {
      ++epoch_;
      NextEpoch();
    }
    batch_.push_back(&documents_[order_[cursor_++]]);
  }
  const float loss = graph_.Forward(parameters_.data(), batch_);
  graph_.Backward(parameters_.data(), grads_.data());
  const float lr = adam_.Update(parameters_.data(), grads_.data());
  return {adam_.step(), loss, lr, graph_.num_targets()};
}

ModelCheckpoint TrainingRun::ModelSnapshot(double loss) const {
  return {options_.config, tokenizer_, parameters_, step(), loss};
}

OptimizerCheckpoint TrainingRun::OptimizerSnapshot() const {
  OptimizerCheckpoint state;
  state.adam_step = adam_.step();
  state.m = adam_.m();
  state.v = adam_.v();
  state.data_order = order_;
  state.data_epoch = epoch_;
  state.data_cursor = cursor_;
  state.rng_state = data_rng_.state();
  state.dataset_sha256 = dataset_sha256_;
  return state;
}

}  // namespace microgpt
