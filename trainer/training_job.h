// TrainingJob: one training run from dataset to published versions.
//
// Run() executes the whole job on the calling thread (the trainer service's
// worker thread, or main() of the one-shot command): it reads the dataset,
// starts a new TrainingRun (from a fresh initialisation, or from a published
// model's weights with init_from) or resumes the model's latest published
// version, then steps until done or cancelled. It publishes a version every
// checkpoint_every steps and at the end, numbered version = step in a
// model's first lineage; a run that replaces a lineage (`replace`) or
// fine-tunes a model from its own version numbers on from the model's latest
// version, version = that version + step, so that each version of a name is
// newer than every one before it; each version records the mean
// loss of the steps since the previous publish (at most the last 100) and,
// when data is held out, the validation loss of its weights. The validation
// loss is also computed every eval_every steps; each one goes into the loss
// curve, the log and the progress events (val_loss, val_step). A
// cancelled job (CancelTraining, or the trainer shutting down) stops after
// its current step and publishes that step, so a resumed run loses nothing
// (discard_on_cancel: it publishes nothing more); a
// failed publish (disk full, unwritable root) fails the job with an error
// naming the path and the system's reason, and the versions already there
// stay as they are. Before it starts, the job removes orphaned temporary
// directories (of publishers killed mid-way); after each publish it applies
// the store's retention policy (see CheckpointStore::ApplyRetention).
//
// Other threads read the job's state (Snapshot) and subscribe watchers that
// receive progress, checkpoint_published and, last, finished events. Progress
// events are throttled to about one per 100 ms or 1% of the steps; the last
// step and every evaluated step always get one.
//
//   TrainingJob job("job-1", options, request, &store);
//   std::thread worker([&] { job.Run([](absl::Status started) { ... }); });
//   job.Subscribe(watcher);  // events from now on, after the latest progress
//   job.Cancel();            // from any thread
#ifndef MICROGPT_TRAINER_TRAINING_JOB_H_
#define MICROGPT_TRAINER_TRAINING_JOB_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/checkpoint_store.h"
#include "common/loss_curve.h"
#include "common/training_run.h"
#include "microgpt/v1/microgpt.pb.h"
#include "trainer/job_options.h"
#include "trainer/job_watcher.h"
#include "trainer/training_observer.h"

namespace microgpt {

class TrainingJob {
 public:
  // `request` is kept for reports (TrainingJob.request) with inline documents
  // left out, so that listing jobs stays small. `store`, and `observer` when
  // given, must outlive the job.
  TrainingJob(std::string id, TrainingJobOptions options,
              v1::StartTrainingRequest request, CheckpointStore* store,
              TrainingObserver* observer = nullptr);

  TrainingJob(const TrainingJob&) = delete;
  TrainingJob& operator=(const TrainingJob&) = delete;

  const std::string& id() const { return id_; }
  const std::string& model() const { return options_.model; }

  // Runs the job to its end; call once. `on_started` is called once the run
  // is set up, before the first step, with OK, or with why the job could not
  // start (the job is then FAILED): NOT_FOUND for a missing dataset file or,
  // when resuming, a model without published versions; FAILED_PRECONDITION
  // when a resumed run is already at `steps` or the dataset is not the one
  // the checkpoint was trained on.
  void Run(const std::function<void(const absl::Status&)>& on_started);

  // Asks the job to stop after its current step (a no-op once it has ended).
  void Cancel();

  // The job as reported by the API.
  v1::TrainingJob Snapshot() const;
  v1::JobState state() const;
  bool ended() const;
  // How the job ended: OK when it succeeded, CANCELLED, or why it failed;
  // UNKNOWN while it runs.
  absl::Status status() const;
  // Blocks until the job has ended.
  void WaitUntilEnded() const;

  // Adds a watcher. It first receives the latest progress (when the run has
  // started) and, when the job has already ended, the finished event. The
  // job closes the watcher (OK) after the finished event.
  void Subscribe(std::shared_ptr<JobWatcher> watcher);
  // Removes a watcher; once this returns, the job no longer touches it.
  void Unsubscribe(const JobWatcher* watcher);

  // Calls `callback` with the final job once it has ended: right away (on
  // this thread) if it already has, else on the job's thread.
  void OnEnded(std::function<void(const v1::TrainingJob&)> callback);

 private:
  // Reads the dataset and sets up the run: new, from a published model's
  // weights (init_from), or resumed.
  absl::StatusOr<std::unique_ptr<TrainingRun>> Prepare();
  // The dataset file in `format`, or the request's inline dataset.
  absl::StatusOr<Dataset> ReadDataset(DatasetFormat format) const;
  // The newest version of `name`, nullopt when it has none (or no
  // directory); an error when the root cannot be listed.
  absl::StatusOr<std::optional<int64_t>> NewestVersion(
      const std::string& name) const;
  // NOT_FOUND, starting with `purpose`: `name` has no published version.
  absl::Status NoVersionError(const std::string& name,
                              absl::string_view purpose) const;
  // The request's options for a model of `config` (a new one's, or a
  // checkpoint's): its thread count, checked against the memory limit, and
  // OpenBLAS set up for it.
  absl::StatusOr<TrainingOptions> OptionsForModel(
      const ModelConfig& config) const;
  absl::StatusOr<std::unique_ptr<TrainingRun>> StartFromPublished(
      const Dataset& dataset);
  // Continues `version`, the model's newest.
  absl::StatusOr<std::unique_ptr<TrainingRun>> ResumeFrom(int64_t version);
  // INVALID_ARGUMENT, starting with `context`, naming every size the request
  // gave that is not the checkpoint's.
  absl::Status CheckRequestedSizes(const ModelConfig& checkpoint,
                                   absl::string_view context) const;
  void Train(TrainingRun& run);
  // The validation loss of the run's current weights, kept as the latest.
  void Evaluate(TrainingRun& run);
  // Publishes the current step (unless discard_on_cancel, or it is already
  // published) and ends the job CANCELLED.
  void EndCancelled(TrainingRun& run, std::deque<float>* recent_losses);
  // Publishes the current step with the mean of `recent_losses` (cleared);
  // false (and the job FAILED) on error.
  bool PublishStep(TrainingRun& run, std::deque<float>* recent_losses);
  // Publishes the run's current step; false (and the job FAILED) on error.
  bool Publish(TrainingRun& run, double loss, std::optional<double> val_loss);
  // Deletes old versions by the store's policy; failures are only logged.
  void ApplyRetention();
  void UpdateProgress(const TrainingRun& run, const StepStats* stats,
                      bool force_event);
  // Ends the job: OK means SUCCEEDED, CANCELLED means CANCELLED, anything
  // else FAILED with the status's message as the job's error.
  void End(const absl::Status& status);

  v1::TrainingJob SnapshotLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(const v1::TrainingEvent& event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Data parallelism (options_.group): rank 0 leads (reads the root,
  // publishes, reports); every rank steps. Decisions that could differ
  // between ranks (a failure, a cancel) go through Agreed, so that all take
  // them at the same step and none waits at a collective alone.
  bool Leads() const {
    return options_.group == nullptr || options_.group->rank() == 0;
  }
  absl::Status Agreed(const absl::Status& status) const {
    return options_.group == nullptr ? status : options_.group->Agree(status);
  }
  // INVALID_ARGUMENT unless this rank's request, and the dataset of its run
  // (fingerprint; empty when it has none), are rank 0's: a rank started with
  // other arguments or other data fails the job at once.
  absl::Status SameJobAsRankZero(const std::string& dataset_fingerprint) const;
  // Whether a cancel was asked for, on any rank (one small collective per
  // call with a group).
  bool CancelAgreed() const {
    const bool cancel = cancel_requested_.load();
    return options_.group == nullptr
               ? cancel
               : !Agreed(cancel ? absl::CancelledError("cancelled")
                                : absl::OkStatus())
                      .ok();
  }

  const std::string id_;
  const TrainingJobOptions options_;
  const v1::StartTrainingRequest request_;
  CheckpointStore* const store_;
  TrainingObserver* const observer_;  // may be null
  std::atomic<bool> cancel_requested_{false};

  // Training statistics; only the job's thread touches them.
  absl::Time start_time_;
  int64_t tokens_ = 0;
  // A published version's number is version_base_ + step: 0 in a model's
  // first lineage, the model's latest version when a run starts a lineage
  // over it, and version - step of the version a run resumes.
  int64_t version_base_ = 0;
  // Every step's loss from step 1 (a resumed run starts from its version's
  // loss.csv); each published version gets it as loss.csv.
  LossCurve loss_curve_;
  // The latest validation loss and its step (none before the first).
  std::optional<double> latest_val_loss_;
  int64_t latest_val_step_ = 0;
  int64_t last_event_step_ = -1;
  absl::Time last_event_time_;

  mutable absl::Mutex mu_;
  v1::JobState state_ ABSL_GUARDED_BY(mu_) = v1::JOB_STATE_RUNNING;
  bool started_ ABSL_GUARDED_BY(mu_) = false;  // the run is set up
  v1::TrainingProgress progress_ ABSL_GUARDED_BY(mu_);
  int64_t latest_version_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mu_) =
      absl::UnknownError("the job is running");
  std::vector<std::shared_ptr<JobWatcher>> watchers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(const v1::TrainingJob&)>> on_ended_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_TRAINING_JOB_H_
