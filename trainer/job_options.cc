#include "trainer/job_options.h"

#include <cmath>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checkpoint_store.h"
#include "common/dataset.h"

namespace microgpt {
namespace {

absl::Status Prefixed(absl::string_view prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

// The request's model sizes with zero fields at their defaults. vocab_size
// comes from the dataset later; the default keeps Validate meaningful.
absl::StatusOr<ModelConfig> ConfigFromRequest(const v1::ModelConfig& proto) {
  ModelConfig config;
  for (auto [name, value, field] :
       {std::tuple{"n_embd", proto.n_embd(), &config.n_embd},
        std::tuple{"n_head", proto.n_head(), &config.n_head},
        std::tuple{"n_layer", proto.n_layer(), &config.n_layer},
        std::tuple{"block_size", proto.block_size(), &config.block_size}}) {
    if (value < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.", name, " must be >= 0 (0 means the default), got ", value));
    }
    if (value > 0) *field = value;
  }
  if (absl::Status status = config.Validate(); !status.ok()) {
    return Prefixed("config.", status);
  }
  return config;
}

}  // namespace

absl::StatusOr<TrainingJobOptions> JobOptionsFromRequest(
    const v1::StartTrainingRequest& request) {
  TrainingJobOptions options;
  if (absl::Status status = ValidateModelName(request.model()); !status.ok()) {
    return Prefixed("model: ", status);
  }
  options.model = request.model();

  switch (request.dataset_case()) {
    case v1::StartTrainingRequest::kDatasetPath:
      if (request.dataset_path().empty()) {
        return absl::InvalidArgumentError("dataset_path is empty");
      }
      options.dataset_file = request.dataset_path();
      break;
    case v1::StartTrainingRequest::kInlineDataset: {
      // The entries as the lines of a dataset file, so the same rules apply
      // (strip, drop empty, UTF-8); "line N" in an error is entry N - 1.
      const auto& documents = request.inline_dataset().documents();
      for (int i = 0; i < documents.size(); ++i) {
        if (documents[i].find('\n') != std::string::npos) {
          return absl::InvalidArgumentError(absl::StrCat(
              "inline_dataset.documents[", i, "] contains a newline"));
        }
      }
      auto parsed = ParseDocuments(absl::StrJoin(documents, "\n"));
      if (!parsed.ok()) return Prefixed("inline_dataset: ", parsed.status());
      options.documents = *std::move(parsed);
      break;
    }
    case v1::StartTrainingRequest::DATASET_NOT_SET:
      return absl::InvalidArgumentError(
          "dataset is not set: give dataset_path or inline_dataset");
  }

  TrainingOptions& training = options.training;
  options.resume = request.resume();
  if (!options.resume) {
    auto config = ConfigFromRequest(request.config());
    if (!config.ok()) return config.status();
    training.config = *config;
  }
  if (request.steps() < 0 || request.steps() > kMaxTrainingSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps must be in [0, ", kMaxTrainingSteps,
                     "] (0 means 1000), got ", request.steps()));
  }
  training.steps = request.steps() == 0 ? 1000 : request.steps();
  if (request.batch_size() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch_size must be >= 0 (0 means 1), got ", request.batch_size()));
  }
  training.batch_size = request.batch_size() == 0 ? 1 : request.batch_size();
  if (request.has_learning_rate()) {
    const float lr = request.learning_rate();
    if (!std::isfinite(lr) || lr <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("learning_rate must be a finite number > 0, got ", lr));
    }
    training.adam.lr = lr;
  }
  training.adam.num_steps = training.steps;
  if (request.has_seed()) training.seed = request.seed();
  if (request.checkpoint_every() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint_every must be >= 0 (0 means only at the end), got ",
        request.checkpoint_every()));
  }
  options.checkpoint_every = request.checkpoint_every();
  if (absl::Status status = training.Validate(); !status.ok()) return status;
  return options;
}

}  // namespace microgpt
