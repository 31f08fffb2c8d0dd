// TrainerServiceImpl: the microgpt.v1.Trainer service.
//
// One job trains at a time, on a worker thread the service owns; RPC
// reactions never run the model. StartTraining validates the request on the
// RPC thread, hands the job to the worker and answers once the run is set up
// (dataset read, checkpoint loaded), so a missing dataset or a resume without
// a version is the RPC's error. WatchTraining streams a job's events through
// a bounded per-watcher queue, so a slow client never holds the job back.
//
//   TrainerServiceImpl service(options);  // checkpoint_root, data_root
//   runner.AddService(&service);
//   ...
//   runner.WaitForShutdown([&] { service.Shutdown(); });  // cancels the job
#ifndef MICROGPT_TRAINER_TRAINER_SERVICE_H_
#define MICROGPT_TRAINER_TRAINER_SERVICE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/checkpoint_store.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "server/work_thread.h"
#include "trainer/checkpoint_feed.h"
#include "trainer/job_options.h"
#include "trainer/training_job.h"

namespace microgpt {

struct TrainerServiceOptions {
  // Where versions are published: <checkpoint_root>/<model>/<version>/.
  std::string checkpoint_root;
  // StartTrainingRequest.dataset_path is relative to this directory and
  // confined to it.
  std::string data_root;
  // Ended jobs kept for GetTraining/ListTrainings; the oldest go first.
  size_t max_ended_jobs = 1000;
  // WatchCheckpoints / DownloadCheckpoint: rescan interval, chunk size.
  CheckpointFeedOptions checkpoint_feed;
  // Old versions deleted after each publish (default: none).
  RetentionPolicy retention;
  // What one StartTraining request may ask for (dataset and memory).
  TrainingLimits limits;
  // Told about every job's progress (the trainer's metrics); may be null.
  // Must outlive the service.
  TrainingObserver* observer = nullptr;
};

class TrainerServiceImpl final : public v1::Trainer::CallbackService {
 public:
  explicit TrainerServiceImpl(TrainerServiceOptions options);
  // Shuts down (see Shutdown).
  ~TrainerServiceImpl() override;

  // Cancels the running job, waits for it to end (its watchers get their
  // `finished` event) and stops the worker thread. Later StartTraining calls
  // fail with UNAVAILABLE. Idempotent.
  void Shutdown();

  grpc::ServerUnaryReactor* StartTraining(
      grpc::CallbackServerContext* context,
      const v1::StartTrainingRequest* request,
      v1::StartTrainingResponse* response) override;
  grpc::ServerWriteReactor<v1::TrainingEvent>* WatchTraining(
      grpc::CallbackServerContext* context,
      const v1::WatchTrainingRequest* request) override;
  grpc::ServerUnaryReactor* GetTraining(grpc::CallbackServerContext* context,
                                        const v1::GetTrainingRequest* request,
                                        v1::TrainingJob* response) override;
  grpc::ServerUnaryReactor* ListTrainings(
      grpc::CallbackServerContext* context,
      const v1::ListTrainingsRequest* request,
      v1::ListTrainingsResponse* response) override;
  grpc::ServerUnaryReactor* CancelTraining(
      grpc::CallbackServerContext* context,
      const v1::CancelTrainingRequest* request,
      v1::TrainingJob* response) override;
  grpc::ServerUnaryReactor* ListCheckpoints(
      grpc::CallbackServerContext* context,
      const v1::ListCheckpointsRequest* request,
      v1::ListCheckpointsResponse* response) override;
  grpc::ServerWriteReactor<v1::CheckpointEvent>* WatchCheckpoints(
      grpc::CallbackServerContext* context,
      const v1::WatchCheckpointsRequest* request) override;
  grpc::ServerWriteReactor<v1::CheckpointChunk>* DownloadCheckpoint(
      grpc::CallbackServerContext* context,
      const v1::DownloadCheckpointRequest* request) override;

 private:
  // A job waiting for the worker, and whom to tell when it has started.
  struct PendingJob {
    std::shared_ptr<TrainingJob> job;
    std::function<void(const absl::Status&)> on_started;
  };

  void WorkerLoop();
  // The job with this id: INVALID_ARGUMENT for a malformed id (ValidateJobId),
  // NOT_FOUND for an unknown one.
  absl::StatusOr<std::shared_ptr<TrainingJob>> FindJob(
      absl::string_view job_id) const;
  std::string NewJobId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetOldJobs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const TrainerServiceOptions options_;
  CheckpointStore store_;
  CheckpointFeed checkpoint_feed_;  // WatchCheckpoints
  // DownloadCheckpoint's file reads, off gRPC's threads.
  WorkThread checkpoint_reader_;

  mutable absl::Mutex mu_;
  // Started jobs, oldest first.
  std::vector<std::shared_ptr<TrainingJob>> jobs_ ABSL_GUARDED_BY(mu_);
  // The job being set up or trained (possibly just ended), if any.
  std::shared_ptr<TrainingJob> active_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<PendingJob> pending_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  int64_t jobs_created_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread worker_;
  std::once_flag join_once_;
};

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_TRAINER_SERVICE_H_
