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

#include "absl/status/statusor.h"
#include "common/training_run.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

// Upper bound on StartTrainingRequest.steps.
inline constexpr int64_t kMaxTrainingSteps = int64_t{1} << 32;

struct TrainingJobOptions {
  std::string model;  // a valid model name
  // The dataset: a file to read (when non-empty), else `documents`.
  std::string dataset_file;
  std::vector<std::string> documents;
  TrainingOptions training;      // validated; config ignored when resuming
  int64_t checkpoint_every = 0;  // 0 = only at the end
  bool resume = false;
};

// Validates a request and maps it to options, defaults filled in. The
// request's dataset_path is copied to dataset_file as it is: the caller
// decides how to confine it (see ResolveDatasetPath). INVALID_ARGUMENT naming
// the field: "model", "dataset_path"/"inline_dataset" (no dataset),
// "config.n_head", "steps", "batch_size", "learning_rate", "checkpoint_every".
absl::StatusOr<TrainingJobOptions> JobOptionsFromRequest(
    const v1::StartTrainingRequest& request);

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_JOB_OPTIONS_H_
