#include "trainer/job_options.h"

#include <cmath>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/blas_threads.h"
#include "common/checkpoint_store.h"
#include "common/dataset.h"
#include "common/tokenizer.h"
#include "common/training_data.h"
#include "server/dataset_format_proto.h"

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

// The request's choices beyond sizes, steps and rate: validation, the start
// (init_from), the initialisation, the schedule and clipping. The values
// TrainingOptions::Validate bounds (val_fraction, init_std, warmup_steps,
// min_learning_rate, grad_clip) are checked there, once.
absl::Status TrainingChoicesFromRequest(const v1::StartTrainingRequest& request,
                                        TrainingJobOptions* options) {
  TrainingOptions& training = options->training;
  const float val_fraction = request.val_fraction();
  training.val_fraction = val_fraction;
  if (request.eval_every() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("eval_every must be >= 0 (0 means at every publish), got ",
                     request.eval_every()));
  }
  if (request.eval_every() > 0 && val_fraction == 0) {
    return absl::InvalidArgumentError(
        "eval_every needs val_fraction > 0 (data held out to evaluate on)");
  }
  options->eval_every = request.eval_every();
  if (request.resume() && request.resume_if_exists()) {
    return absl::InvalidArgumentError(
        "resume and resume_if_exists exclude each other (resume_if_exists "
        "resumes when there is a version, and starts a new run when not)");
  }
  if (request.replace() && (request.resume() || request.resume_if_exists())) {
    return absl::InvalidArgumentError(
        "replace and resume (or resume_if_exists) exclude each other: replace "
        "starts a new lineage under the name, resume continues its latest");
  }
  options->replace = request.replace();
  if (!request.init_from().empty()) {
    if (request.resume() || request.resume_if_exists()) {
      return absl::InvalidArgumentError(
          "init_from and resume (or resume_if_exists) exclude each other: "
          "resume continues this model's own run, init_from starts a new one "
          "from another's weights");
    }
    if (request.has_config()) {
      return absl::InvalidArgumentError(
          "config must be unset with init_from (the sizes are the "
          "checkpoint's)");
    }
    if (absl::Status status =
            ParseInitFrom(request.init_from(), &options->init_from_model,
                          &options->init_from_version);
        !status.ok()) {
      return status;
    }
    options->start = RunStart::kInitFrom;
  } else if (request.resume()) {
    options->start = RunStart::kResume;
  } else if (request.resume_if_exists()) {
    options->start = RunStart::kResumeIfExists;
  }
  options->discard_on_cancel = request.discard_on_cancel();
  if (request.has_init_std()) training.init_std = request.init_std();
  switch (request.lr_schedule()) {
    case v1::LEARNING_RATE_SCHEDULE_UNSPECIFIED:
    case v1::LEARNING_RATE_SCHEDULE_LINEAR:
      training.adam.schedule = LearningRateSchedule::kLinear;
      break;
    case v1::LEARNING_RATE_SCHEDULE_COSINE:
      training.adam.schedule = LearningRateSchedule::kCosine;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("lr_schedule ", request.lr_schedule(),
                       " is not a LearningRateSchedule"));
  }
  training.adam.warmup_steps = request.warmup_steps();
  training.adam.min_lr = request.has_min_learning_rate()
                             ? request.min_learning_rate()
                             : training.adam.lr / 10;
  training.grad_clip = request.grad_clip();
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJobId(absl::string_view job_id) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id is empty");
  if (job_id.size() > kMaxJobIdLength) {
    return absl::InvalidArgumentError(absl::StrCat("job_id has ", job_id.size(),
                                                   " characters, more than ",
                                                   kMaxJobIdLength));
  }
  for (const char c : job_id) {
    if (!absl::ascii_isalnum(c) && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("job_id \"", absl::CHexEscape(job_id),
                       "\" has a character outside [A-Za-z0-9-]"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDataset(const Dataset& dataset, const TrainingLimits& limits,
                          absl::string_view field) {
  if (dataset.format == DatasetFormat::kText) {
    if (static_cast<int64_t>(dataset.text.size()) > limits.max_dataset_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " has ", dataset.text.size(),
          " bytes of text, more than the limit of ", limits.max_dataset_bytes));
    }
    return absl::OkStatus();
  }
  const std::vector<std::string>& documents = dataset.documents;
  if (static_cast<int64_t>(documents.size()) > limits.max_documents) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " has ", documents.size(), " documents, more than the limit of ",
        limits.max_documents));
  }
  int64_t total = 0;
  for (size_t i = 0; i < documents.size(); ++i) {
    const int64_t bytes = static_cast<int64_t>(documents[i].size());
    if (bytes > limits.max_document_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": document ", i, " has ", bytes,
          " bytes, more than the limit of ", limits.max_document_bytes));
    }
    total += bytes;
  }
  if (total > limits.max_dataset_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " has ", total, " bytes of documents, more than ",
                     "the limit of ", limits.max_dataset_bytes));
  }
  return absl::OkStatus();
}

int64_t EstimateTrainingBytes(const ModelConfig& config, int batch_size,
                              int threads) {
  // Dimension names of TrainingGraph; every factor is bounded by
  // ModelConfig::Validate and TrainingOptions::Validate, so int64 holds the
  // products.
  const int64_t B = batch_size, T = config.block_size, C = config.n_embd,
                L = config.n_layer, NH = config.n_head, V = config.vocab_size;
  const int64_t N = B * T;  // rows of a full batch
  const int64_t P = config.num_parameters();
  // Parameters, gradients, Adam's m and v; each extra thread's gradients.
  const int64_t parameter_floats = (4 + (threads - 1)) * P;
  // Per layer: ln1, qkv, atty, ln2 ([N, C] x 6), fch ([N, 4C]), two rstd
  // ([N]), and the attention weights of every document ([B, NH, T, T]).
  const int64_t layer_floats = N * (10 * C + 2) + B * NH * T * T;
  // Shared: encoded, x, dx, dln, datty ([N, C] x 5), dfch ([N, 4C]), dqkv
  // ([N, 3C]), logits, probs, dlogits ([N, V] x 3), encoded_rstd, and each
  // thread's attention scratch ([NH, T, T]).
  const int64_t shared_floats =
      N * (12 * C + 3 * V + 1) + int64_t{threads} * NH * T * T;
  return static_cast<int64_t>(sizeof(float)) *
         (parameter_floats + L * layer_floats + shared_floats);
}

absl::Status CheckTrainingFits(const TrainingOptions& training,
                               const TrainingLimits& limits) {
  const ModelConfig& c = training.config;
  const int64_t bytes =
      EstimateTrainingBytes(c, training.batch_size, training.threads);
  if (bytes <= limits.max_training_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "training would need about ",
      absl::StrFormat("%.1f", static_cast<double>(bytes) / (1 << 20)), " MiB (",
      bytes,
      " bytes: parameters, gradients, Adam state and activations for n_embd ",
      c.n_embd, ", n_head ", c.n_head, ", n_layer ", c.n_layer, ", block_size ",
      c.block_size, ", vocab_size ", c.vocab_size, ", batch_size ",
      training.batch_size, "), more than this trainer's limit of ",
      limits.max_training_bytes,
      " bytes (--max_training_bytes); make the model or the batch smaller"));
}

absl::Status ParseInitFrom(absl::string_view init_from, std::string* model,
                           int64_t* version) {
  const size_t colon = init_from.rfind(':');
  *model = std::string(init_from.substr(0, colon));
  *version = 0;
  if (absl::Status status = ValidateModelName(*model); !status.ok()) {
    return Prefixed("init_from: ", status);
  }
  if (colon != absl::string_view::npos &&
      (!absl::SimpleAtoi(init_from.substr(colon + 1), version) ||
       *version < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "init_from must be MODEL or MODEL:VERSION with VERSION >= 1, got \"",
        absl::CHexEscape(init_from), "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainingJobOptions> JobOptionsFromRequest(
    const v1::StartTrainingRequest& request, const TrainingLimits& limits) {
  TrainingJobOptions options;
  options.limits = limits;
  if (absl::Status status = ValidateModelName(request.model()); !status.ok()) {
    return Prefixed("model: ", status);
  }
  options.model = request.model();

  if (!FromProto(request.format(), &options.dataset.format)) {
    return absl::InvalidArgumentError(
        absl::StrCat("format ", request.format(), " is not a DatasetFormat"));
  }
  const bool text = options.dataset.format == DatasetFormat::kText;
  switch (request.dataset_case()) {
    case v1::StartTrainingRequest::kDatasetPath:
      if (request.dataset_path().empty()) {
        return absl::InvalidArgumentError("dataset_path is empty");
      }
      options.dataset_file = request.dataset_path();
      break;
    case v1::StartTrainingRequest::kInlineDataset: {
      const v1::InlineDataset& inline_dataset = request.inline_dataset();
      if (text != !inline_dataset.text().empty() ||
          (text && !inline_dataset.documents().empty())) {
        return absl::InvalidArgumentError(
            text ? "inline_dataset: the TEXT format takes inline_dataset.text "
                   "(and no documents)"
                 : "inline_dataset: the DOCUMENTS format takes "
                   "inline_dataset.documents (and no text)");
      }
      if (text) {
        if (static_cast<int64_t>(inline_dataset.text().size()) >
            limits.max_dataset_bytes) {
          return absl::InvalidArgumentError(absl::StrCat(
              "inline_dataset has ", inline_dataset.text().size(),
              " bytes, more than the limit of ", limits.max_dataset_bytes));
        }
        auto parsed = ParseText(inline_dataset.text());
        if (!parsed.ok()) return Prefixed("inline_dataset: ", parsed.status());
        options.dataset = *std::move(parsed);
        break;
      }
      // The entries as the lines of a dataset file, so the same rules apply
      // (strip, drop empty, UTF-8); "line N" in an error is entry N - 1.
      const auto& documents = request.inline_dataset().documents();
      if (documents.size() > limits.max_documents) {
        return absl::InvalidArgumentError(absl::StrCat(
            "inline_dataset has ", documents.size(),
            " documents, more than the limit of ", limits.max_documents));
      }
      int64_t bytes = 0;
      for (int i = 0; i < documents.size(); ++i) {
        if (documents[i].find('\n') != std::string::npos) {
          return absl::InvalidArgumentError(absl::StrCat(
              "inline_dataset.documents[", i, "] contains a newline"));
        }
        bytes += static_cast<int64_t>(documents[i].size());
      }
      // Before the join, which would copy all of it.
      if (bytes > limits.max_dataset_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "inline_dataset has ", bytes, " bytes, more than the limit of ",
            limits.max_dataset_bytes));
      }
      auto parsed = ParseDocuments(absl::StrJoin(documents, "\n"));
      if (!parsed.ok()) return Prefixed("inline_dataset: ", parsed.status());
      options.dataset.documents = *std::move(parsed);
      if (absl::Status status =
              CheckDataset(options.dataset, limits, "inline_dataset");
          !status.ok()) {
        return status;
      }
      break;
    }
    case v1::StartTrainingRequest::DATASET_NOT_SET:
      return absl::InvalidArgumentError(
          "dataset is not set: give dataset_path or inline_dataset");
  }

  TrainingOptions& training = options.training;
  // The sizes of a new run (with resume_if_exists, of the run it may be);
  // a resumed run takes the checkpoint's and checks the request's against
  // them (TrainingJob).
  auto config = ConfigFromRequest(request.config());
  if (!config.ok()) return config.status();
  training.config = *config;
  options.requested_sizes = {
      request.config().n_embd(), request.config().n_head(),
      request.config().n_layer(), request.config().block_size()};
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
  if (absl::Status status = TrainingChoicesFromRequest(request, &options);
      !status.ok()) {
    return status;
  }
  training.threads = TrainingThreadsFor(training.config);
  if (absl::Status status = training.Validate(); !status.ok()) return status;
  if (options.start == RunStart::kNew) {
    // The vocabulary of a dataset file is known once it is read (the job
    // checks again then); until then, the smallest one.
    training.config.vocab_size =
        options.dataset_file.empty()
            ? TokenizerFor(options.dataset).vocab_size()
            : 2;
    if (absl::Status status = CheckTrainingFits(training, limits);
        !status.ok()) {
      return status;
    }
  }
  return options;
}

}  // namespace microgpt
