// TrainerMetrics: the trainer's Prometheus metrics.
//
// A TrainingObserver: `microgpt-trainer serve` or `train` with --metrics_port
// starts one and hands it to the jobs (TrainerServerOptions.observer,
// LocalTrainingOptions.observer). Series:
//
// The latest job's series are labelled {job_id, model} (replaced when the next
// job starts); the counters by model or state.
//
//   microgpt_trainer_step                         gauge, of the latest job
//   microgpt_trainer_total_steps                  gauge
//   microgpt_trainer_loss                         gauge, the latest step's
//   microgpt_trainer_learning_rate                gauge
//   microgpt_trainer_tokens_per_second            gauge, since the job began
//   microgpt_trainer_val_loss, microgpt_trainer_val_step  gauges, the latest
//       evaluation's (NaN before one)
//   microgpt_trainer_tokens_total{model}          counter of target tokens
//   microgpt_trainer_checkpoints_published_total{model}  counter
//   microgpt_trainer_job_state{state,...}         gauge: 1 for the latest
//       job's state (running, succeeded, failed, cancelled), 0 for the others
//   microgpt_trainer_jobs_total{state}            counter of ended jobs
//
//   MICROGPT_ASSIGN_OR_RETURN(auto metrics, TrainerMetrics::Start(address));
//   options.observer = metrics.get();  ... jobs run ...; metrics->port();
#ifndef MICROGPT_TRAINER_TRAINER_METRICS_H_
#define MICROGPT_TRAINER_TRAINER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "microgpt/v1/microgpt.pb.h"
#include "trainer/training_observer.h"

namespace microgpt {

class TrainerMetrics final : public TrainingObserver {
 public:
  // Serves /metrics on `address` ("host:port", port 0 picks one) until
  // destroyed. UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<TrainerMetrics>> Start(
      const std::string& address);
  ~TrainerMetrics() override;

  int port() const;

  // TrainingObserver, from the job's thread.
  void OnState(absl::string_view model, absl::string_view job_id,
               v1::JobState state) override;
  void OnProgress(absl::string_view model, absl::string_view job_id,
                  const v1::TrainingProgress& progress) override;
  void OnPublished(absl::string_view model, int64_t version) override;

 private:
  struct Impl;
  explicit TrainerMetrics(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_TRAINER_METRICS_H_
