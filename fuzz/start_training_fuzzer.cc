// libFuzzer target: StartTraining request validation (JobOptionsFromRequest
// and the model-name check). The input is a serialised
// microgpt.v1.StartTrainingRequest; accepted requests must yield options
// within the documented limits.
#include <cstddef>
#include <cstdint>

#include "common/checkpoint_store.h"
#include "google/protobuf/stubs/logging.h"
#include "microgpt/v1/microgpt.pb.h"
#include "trainer/job_options.h"

// Invalid UTF-8 in string fields is logged by protobuf on every parse: mute.
void IgnoreProtobufLog(google::protobuf::LogLevel, const char*, int,
                       const std::string&) {}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(IgnoreProtobufLog);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microgpt;
  v1::StartTrainingRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  (void)ValidateModelName(request.model());
  absl::StatusOr<TrainingJobOptions> options = JobOptionsFromRequest(request);
  if (!options.ok()) {
    // A bad field, or a model over the default memory budget.
    const absl::StatusCode code = options.status().code();
    if (code != absl::StatusCode::kInvalidArgument &&
        code != absl::StatusCode::kResourceExhausted) {
      __builtin_trap();
    }
    return 0;
  }
  if (!ValidateModelName(options->model).ok()) __builtin_trap();
  if (options->dataset_file.empty() && options->dataset.documents.empty() &&
      options->dataset.text.empty())
    __builtin_trap();
  if (options->checkpoint_every < 0) __builtin_trap();
  if (!request.resume() && !options->training.Validate().ok()) __builtin_trap();
  return 0;
}
