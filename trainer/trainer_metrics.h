// TrainerMetrics: the trainer's Prometheus metrics.
//
// Training jobs report through the static Record* hooks, which do nothing
// until a TrainerMetrics is installed (one per process: `microgpt-trainer
// serve` or `train` with --metrics_port). Series:
//
//   microgpt_trainer_step                         gauge, of the latest job
//   microgpt_trainer_total_steps                  gauge
//   microgpt_trainer_loss                         gauge, the latest step's
//   microgpt_trainer_learning_rate                gauge
//   microgpt_trainer_tokens_per_second            gauge, since the job began
//   microgpt_trainer_checkpoints_published_total{model}  counter
//   microgpt_trainer_job_state{state}             gauge: 1 for the latest
//       job's state (running, succeeded, failed, cancelled), 0 for the others
//   microgpt_trainer_jobs_total{state}            counter of ended jobs
//
//   MICROGPT_ASSIGN_OR_RETURN(auto metrics, TrainerMetrics::Start(address));
//   ... jobs run ...; metrics->port();
#ifndef MICROGPT_TRAINER_TRAINER_METRICS_H_
#define MICROGPT_TRAINER_TRAINER_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

class TrainerMetrics {
 public:
  // Serves /metrics on `address` ("host:port", port 0 picks one) and installs
  // the metrics for the hooks until destroyed. FAILED_PRECONDITION when one
  // is installed already, UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<TrainerMetrics>> Start(
      const std::string& address);
  ~TrainerMetrics();

  int port() const;

  // Hooks, from the job's thread. Cheap; no-ops without metrics installed.
  static void RecordProgress(const v1::TrainingProgress& progress);
  static void RecordPublished(absl::string_view model);
  // The job's state changed (RUNNING when it begins; then how it ended).
  static void RecordState(v1::JobState state);

  struct Impl;  // an implementation detail (public for the .cc's globals)

 private:
  explicit TrainerMetrics(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_TRAINER_METRICS_H_
