// The `microgpt-trainer serve` command: the Trainer service on a gRPC server
// until SIGTERM or SIGINT.
//
// At start it removes temporary directories a publisher that died left in the
// checkpoint root. On a shutdown signal it cancels the running job (nothing
// partial is published; watchers get their `finished` event), then drains.
#ifndef MICROGPT_TRAINER_TRAINER_SERVER_H_
#define MICROGPT_TRAINER_TRAINER_SERVER_H_

#include <string>

#include "absl/status/status.h"
#include "common/checkpoint_store.h"
#include "server/server_runner.h"
#include "trainer/job_options.h"
#include "trainer/training_observer.h"

namespace microgpt {

struct TrainerServerOptions {
  ServerOptions server;
  std::string checkpoint_root;  // created when missing
  std::string data_root;        // empty: only inline datasets
  RetentionPolicy retention;    // old versions deleted after each publish
  TrainingLimits limits;        // what one StartTraining may ask for
  TrainingObserver* observer = nullptr;  // the metrics; may be null
};

// Serves until a shutdown signal; OK after a clean shutdown. Call
// BlockShutdownSignals() first thing in main().
absl::Status RunTrainerServer(const TrainerServerOptions& options);

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_TRAINER_SERVER_H_
