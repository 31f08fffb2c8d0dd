// The one-shot `microgpt-trainer train` command: runs a training job in this
// process, printing progress lines and published versions to stdout.
//
//   step 100/1000 | loss 2.6512 | lr 0.009000 | 123456 tok/s
//   published names version 1000: /ckpt/names/1000 (loss 2.4102)
//
// SIGINT or SIGTERM cancels the job after its current step, which is
// published (unless the request says discard_on_cancel). The signals must be
// blocked in every thread beforehand (see BlockShutdownSignals).
#ifndef MICROGPT_TRAINER_LOCAL_TRAINING_H_
#define MICROGPT_TRAINER_LOCAL_TRAINING_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/checkpoint_store.h"
#include "common/process_group.h"
#include "microgpt/v1/microgpt.pb.h"
#include "trainer/job_options.h"
#include "trainer/training_observer.h"

namespace microgpt {

struct LocalTrainingOptions {
  std::string checkpoint_root;
  // A progress line about every this many steps; 0 = about ten per run.
  int64_t print_every = 0;
  // Old versions deleted after each publish (default: none).
  RetentionPolicy retention;
  // What the job may use (dataset, memory).
  TrainingLimits limits;
  // Told about the job's progress (the trainer's metrics); may be null.
  TrainingObserver* observer = nullptr;
  // Threads of the forward and backward; 0: chosen by the model's size.
  int threads = 0;
  // Under mpirun: the ranks that run the job together (rank 0 prints,
  // publishes and reports; see TrainingJob). Null: this process alone.
  ProcessGroup* group = nullptr;
};

// Trains as `request` says (its dataset_path is a local file, used as given)
// and returns OK once the final version is published, CANCELLED when
// interrupted, or why the job failed.
absl::Status TrainLocally(const v1::StartTrainingRequest& request,
                          const LocalTrainingOptions& options);

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_LOCAL_TRAINING_H_
