#include "trainer/trainer_service.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "server/grpc_status.h"
#include "server/stream_reactor.h"
#include "trainer/checkpoint_listing.h"
#include "trainer/dataset_path.h"
#include "trainer/job_options.h"

namespace microgpt {

TrainerServiceImpl::TrainerServiceImpl(TrainerServiceOptions options)
    : options_(std::move(options)),
      store_(options_.checkpoint_root, options_.retention),
      checkpoint_feed_(&store_, options_.checkpoint_feed) {
  checkpoint_feed_.Start();
  worker_ = std::thread([this] { WorkerLoop(); });
}

TrainerServiceImpl::~TrainerServiceImpl() { Shutdown(); }

void TrainerServiceImpl::Shutdown() {
  std::shared_ptr<TrainingJob> active;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    active = active_;
  }
  if (active != nullptr) active->Cancel();
  checkpoint_feed_.Stop();  // WatchCheckpoints streams end UNAVAILABLE
  std::call_once(join_once_, [this] { worker_.join(); });
}

void TrainerServiceImpl::WorkerLoop() {
  while (true) {
    std::unique_ptr<PendingJob> next;
    bool shutting_down;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return pending_ != nullptr || shutting_down_;
      };
      mu_.Await(absl::Condition(&has_work));
      if (pending_ == nullptr) return;  // shutting down, nothing left
      next = std::move(pending_);
      shutting_down = shutting_down_;
    }
    if (shutting_down) {
      next->on_started(absl::UnavailableError("the trainer is shutting down"));
      continue;
    }
    next->job->Run(next->on_started);
  }
}

grpc::ServerUnaryReactor* TrainerServiceImpl::StartTraining(
    grpc::CallbackServerContext* context,
    const v1::StartTrainingRequest* request,
    v1::StartTrainingResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<TrainingJobOptions> options =
      JobOptionsFromRequest(*request, options_.limits);
  if (options.ok() && request->has_dataset_path()) {
    if (options_.data_root.empty()) {
      options = absl::FailedPreconditionError(
          "this trainer has no --data_root; send inline_dataset instead of "
          "dataset_path");
    } else {
      absl::StatusOr<std::string> path =
          ResolveDatasetPath(options_.data_root, request->dataset_path());
      if (path.ok()) {
        options->dataset_file = *std::move(path);
      } else {
        options = path.status();
      }
    }
  }
  if (!options.ok()) {
    reactor->Finish(ToGrpcStatus(options.status()));
    return reactor;
  }

  absl::MutexLock lock(&mu_);
  if (shutting_down_) {
    reactor->Finish(
        ToGrpcStatus(absl::UnavailableError("the trainer is shutting down")));
    return reactor;
  }
  if (active_ != nullptr && !active_->ended()) {
    reactor->Finish(ToGrpcStatus(absl::FailedPreconditionError(absl::StrCat(
        "job ", active_->id(), " (model \"", active_->model(),
        "\") is still running; cancel it or wait for it to end"))));
    return reactor;
  }
  auto job = std::make_shared<TrainingJob>(
      NewJobId(), *std::move(options), *request, &store_, options_.observer);
  active_ = job;
  pending_ = std::make_unique<PendingJob>();
  pending_->job = job;
  pending_->on_started = [this, job, reactor,
                          response](const absl::Status& status) {
    if (status.ok()) {
      absl::MutexLock lock(&mu_);
      jobs_.push_back(job);
      ForgetOldJobs();
      response->set_job_id(job->id());
    }
    reactor->Finish(ToGrpcStatus(status));
  };
  LogInfo(absl::StrFormat("job %s: accepted (model \"%s\")", job->id(),
                          job->model()));
  return reactor;
}

grpc::ServerWriteReactor<v1::TrainingEvent>* TrainerServiceImpl::WatchTraining(
    grpc::CallbackServerContext* context,
    const v1::WatchTrainingRequest* request) {
  absl::StatusOr<std::shared_ptr<TrainingJob>> job = FindJob(request->job_id());
  if (!job.ok()) {
    return new FailedStreamReactor<v1::TrainingEvent>(job.status());
  }
  // The job's thread pushes into the watcher and the reactor writes. The
  // stream ends after the `finished` event (the job closes the watcher), or
  // when the client goes away (the job goes on).
  auto watcher = std::make_shared<JobWatcher>();
  (*job)->Subscribe(watcher);
  return new QueueStreamReactor<v1::TrainingEvent>(
      watcher, "the watch",
      [job = *std::move(job), watcher] { job->Unsubscribe(watcher.get()); });
}

grpc::ServerUnaryReactor* TrainerServiceImpl::GetTraining(
    grpc::CallbackServerContext* context, const v1::GetTrainingRequest* request,
    v1::TrainingJob* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::shared_ptr<TrainingJob>> job = FindJob(request->job_id());
  if (job.ok()) *response = (*job)->Snapshot();
  reactor->Finish(ToGrpcStatus(job.status()));
  return reactor;
}

grpc::ServerUnaryReactor* TrainerServiceImpl::ListTrainings(
    grpc::CallbackServerContext* context,
    const v1::ListTrainingsRequest* request,
    v1::ListTrainingsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::vector<std::shared_ptr<TrainingJob>> jobs;
  {
    absl::MutexLock lock(&mu_);
    jobs = jobs_;
  }
  for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) {
    *response->add_jobs() = (*it)->Snapshot();
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* TrainerServiceImpl::CancelTraining(
    grpc::CallbackServerContext* context,
    const v1::CancelTrainingRequest* request, v1::TrainingJob* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::shared_ptr<TrainingJob>> job = FindJob(request->job_id());
  if (!job.ok()) {
    reactor->Finish(ToGrpcStatus(job.status()));
    return reactor;
  }
  (*job)->Cancel();
  // Answers with the final job once the current step is done.
  (*job)->OnEnded([reactor, response](const v1::TrainingJob& final_job) {
    *response = final_job;
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* TrainerServiceImpl::ListCheckpoints(
    grpc::CallbackServerContext* context,
    const v1::ListCheckpointsRequest* request,
    v1::ListCheckpointsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::vector<v1::CheckpointInfo>> checkpoints =
      ListCheckpointInfos(store_, request->model());
  if (checkpoints.ok()) {
    for (v1::CheckpointInfo& info : *checkpoints) {
      *response->add_checkpoints() = std::move(info);
    }
  }
  reactor->Finish(ToGrpcStatus(checkpoints.status()));
  return reactor;
}

grpc::ServerWriteReactor<v1::CheckpointEvent>*
TrainerServiceImpl::WatchCheckpoints(
    grpc::CallbackServerContext* context,
    const v1::WatchCheckpointsRequest* request) {
  return NewWatchCheckpointsReactor(&checkpoint_feed_, *request);
}

grpc::ServerWriteReactor<v1::CheckpointChunk>*
TrainerServiceImpl::DownloadCheckpoint(
    grpc::CallbackServerContext* context,
    const v1::DownloadCheckpointRequest* request) {
  return NewDownloadCheckpointReactor(&store_, &checkpoint_reader_,
                                      options_.checkpoint_feed.chunk_bytes,
                                      *request);
}

absl::StatusOr<std::shared_ptr<TrainingJob>> TrainerServiceImpl::FindJob(
    absl::string_view job_id) const {
  if (absl::Status status = ValidateJobId(job_id); !status.ok()) {
    return status;
  }
  absl::MutexLock lock(&mu_);
  for (const auto& job : jobs_) {
    if (job->id() == job_id) return job;
  }
  return absl::NotFoundError(absl::StrCat("no training job with job_id \"",
                                          job_id, "\" on this trainer"));
}

std::string TrainerServiceImpl::NewJobId() {
  // The counter orders jobs for people; the random part keeps ids of
  // different server runs apart.
  std::random_device random;
  return absl::StrFormat("job-%d-%08x", ++jobs_created_, random());
}

void TrainerServiceImpl::ForgetOldJobs() {
  size_t ended = std::count_if(jobs_.begin(), jobs_.end(),
                               [](const auto& job) { return job->ended(); });
  for (auto it = jobs_.begin();
       it != jobs_.end() && ended > options_.max_ended_jobs;) {
    if ((*it)->ended()) {
      it = jobs_.erase(it);
      --ended;
    } else {
      ++it;
    }
  }
}

}  // namespace microgpt
