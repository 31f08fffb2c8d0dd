// TrainingObserver: what a training job reports as it runs, for metrics. The
// trainer's one way of observing jobs, as GeneratorServiceObserver is the
// generator's: TrainerMetrics implements it and is handed to the jobs (through
// TrainerServiceOptions or LocalTrainingOptions); no observer, no calls.
#ifndef MICROGPT_TRAINER_TRAINING_OBSERVER_H_
#define MICROGPT_TRAINER_TRAINING_OBSERVER_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

// Called on the job's thread; implementations must be cheap and thread-safe
// (jobs of one server run one at a time, but an observer may outlive them).
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  // Job `job_id` of `model` changed state: RUNNING when it begins, then how
  // it ended (SUCCEEDED, FAILED, CANCELLED).
  virtual void OnState(absl::string_view model, absl::string_view job_id,
                       v1::JobState state) = 0;
  // A step's progress (every step).
  virtual void OnProgress(absl::string_view model, absl::string_view job_id,
                          const v1::TrainingProgress& progress) = 0;
  // `version` of `model` was published.
  virtual void OnPublished(absl::string_view model, int64_t version) = 0;
};

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_TRAINING_OBSERVER_H_
