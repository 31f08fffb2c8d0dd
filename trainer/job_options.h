// TrainingJobOptions: what a training job does, built from a StartTraining
// request. The server and the one-shot `microgpt-trainer train` command both
// go through JobOptionsFromRequest, so a request means the same thing however
// it arrives.
//
//   v1::StartTrainingRequest request;
//   request.set_model("names");
//   request.set_dataset_path("names.txt");
//   absl::StatusOr<TrainingJobOptions> options =
//   JobOptionsFromRequest(request);
#ifndef MICROGPT_TRAINER_JOB_OPTIONS_H_
#define MICROGPT_TRAINER_JOB_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/config.h"
#include "common/dataset.h"
#include "common/process_group.h"
#include "common/training_run.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

// Upper bound on StartTrainingRequest.steps.
inline constexpr int64_t kMaxTrainingSteps = int64_t{1} << 32;
// Longest job_id accepted by WatchTraining, GetTraining and CancelTraining
// (the trainer's own ids, "job-<n>-<8 hex digits>", are shorter).
inline constexpr size_t kMaxJobIdLength = 64;

// What one StartTraining request may ask of the trainer. The serve command's
// flags set them (--max_dataset_bytes, --max_training_bytes); the defaults
// suit a machine with a few GiB to spare.
struct TrainingLimits {
  // Bytes of the dataset: the file under --data_root, or the inline documents
  // together (which the server's max message size bounds too).
  int64_t max_dataset_bytes = int64_t{256} << 20;
  // Documents (after stripping and dropping empty ones), and bytes of one.
  // Training reads at most block_size characters of a document, so longer
  // ones are mistakes, not data.
  int64_t max_documents = int64_t{1} << 22;
  int64_t max_document_bytes = int64_t{64} << 10;
  // The run's estimated memory (EstimateTrainingBytes).
  int64_t max_training_bytes = int64_t{4} << 30;
};

// How a job's run begins.
enum class RunStart {
  kNew,             // fresh weights; with versions only with `replace`
  kResume,          // from the model's latest version (NOT_FOUND without)
  kResumeIfExists,  // kResume when the model has a version, else kNew
  kInitFrom,        // from a published version's weights, fresh optimizer;
                    // into a model with versions: from its own, or `replace`
};

// Sizes a request gave explicitly (0: not given), to compare with a resumed
// checkpoint's.
struct RequestedSizes {
  int n_embd = 0, n_head = 0, n_layer = 0, block_size = 0;
};

struct TrainingJobOptions {
  std::string model;  // a valid model name
  // The dataset: a file to read in dataset.format (when non-empty), else
  // `dataset` itself.
  std::string dataset_file;
  Dataset dataset;
  TrainingOptions training;      // validated; config ignored when resuming
  int64_t checkpoint_every = 0;  // 0 = only at the end
  // The validation loss every this many steps (and at every publish);
  // 0 = only at publishes. Only with training.val_fraction > 0.
  int64_t eval_every = 0;
  RunStart start = RunStart::kNew;
  // kResume / kResumeIfExists: the sizes the request gave, which must be the
  // checkpoint's.
  RequestedSizes requested_sizes;
  // kInitFrom: the published model whose weights start the run; version 0
  // is its latest.
  std::string init_from_model;
  int64_t init_from_version = 0;
  // kNew / kInitFrom under a model that has versions: a new lineage whose
  // versions number on from the latest (TrainingJob::version_base_).
  bool replace = false;
  // A cancelled job publishes the step it reached unless this is set.
  bool discard_on_cancel = false;
  // Threads of the forward and backward (TrainingOptions::threads); 0: the
  // automatic choice (TrainingThreadsFor).
  int threads = 0;
  // Data parallelism: every rank of the group runs this job (see
  // TrainingJob); null: this process alone. Not owned.
  ProcessGroup* group = nullptr;
  // Checked by JobOptionsFromRequest as far as the request allows, and by
  // CheckDataset / CheckTrainingFits once the dataset is read.
  TrainingLimits limits;
};

// Validates a request and maps it to options, defaults filled in. The
// request's dataset_path is copied to dataset_file as it is: the caller
// decides how to confine it (see ResolveDatasetPath). INVALID_ARGUMENT naming
// the field: "model", "dataset_path"/"inline_dataset" (no dataset, or beyond
// the limits of CheckDataset), "config.n_head", "steps", "batch_size",
// "learning_rate", "checkpoint_every", "format", "val_fraction",
// "eval_every", "init_from", "init_std", "lr_schedule", "warmup_steps",
// "min_learning_rate", "grad_clip". RESOURCE_EXHAUSTED when a new model
// would not fit limits.max_training_bytes (CheckTrainingFits; for a dataset
// file, with the smallest vocabulary until the file is read).
absl::StatusOr<TrainingJobOptions> JobOptionsFromRequest(
    const v1::StartTrainingRequest& request,
    const TrainingLimits& limits = TrainingLimits());

// INVALID_ARGUMENT naming the field "job_id" unless `job_id` has 1 to
// kMaxJobIdLength characters of [A-Za-z0-9-] (what the trainer hands out).
absl::Status ValidateJobId(absl::string_view job_id);

// INVALID_ARGUMENT naming `field` ("dataset_path", "inline_dataset") and the
// limit when the dataset exceeds `limits`: its bytes, and for documents their
// count and the bytes of one.
absl::Status CheckDataset(const Dataset& dataset, const TrainingLimits& limits,
                          absl::string_view field);

// "MODEL" or "MODEL:VERSION" (VERSION >= 1) as model and version (0 for
// the latest); INVALID_ARGUMENT naming init_from otherwise.
absl::Status ParseInitFrom(absl::string_view init_from, std::string* model,
                           int64_t* version);

// Bytes a training run of `config` (vocab_size included) holds, from the
// buffers TrainingGraph and TrainingRun allocate: the parameters, their
// gradients and Adam's two moments (4 floats each, plus a gradient copy per
// extra thread) and the activations of a full batch of block_size tokens
// with their gradients.
int64_t EstimateTrainingBytes(const ModelConfig& config, int batch_size,
                              int threads);

// RESOURCE_EXHAUSTED naming the estimate, the sizes and the limit when
// EstimateTrainingBytes(training) exceeds limits.max_training_bytes.
absl::Status CheckTrainingFits(const TrainingOptions& training,
                               const TrainingLimits& limits);

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_JOB_OPTIONS_H_
