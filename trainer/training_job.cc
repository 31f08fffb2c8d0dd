#include "trainer/training_job.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <numeric>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/blas_threads.h"
#include "common/dataset.h"
#include "common/denormals.h"
#include "common/log.h"
#include "common/loss_curve.h"
#include "common/parameters.h"
#include "common/status_macros.h"
#include "common/tokenizer.h"
#include "common/training_data.h"
#include "google/protobuf/util/message_differencer.h"
#include "trainer/checkpoint_listing.h"
#include "trainer/job_state.h"

namespace microgpt {
namespace {

// Progress events: at most about one per kEventInterval, or per 1% of the
// steps, whichever comes first.
constexpr absl::Duration kEventInterval = absl::Milliseconds(100);
// A published version's loss: the mean over at most this many recent steps.
constexpr size_t kLossWindow = 100;

v1::StartTrainingRequest WithoutInlineDataset(
    v1::StartTrainingRequest request) {
  if (request.has_inline_dataset()) {
    request.mutable_inline_dataset()->clear_documents();
    request.mutable_inline_dataset()->clear_text();
  }
  return request;
}

absl::Status Annotated(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(),
                      absl::StrCat(context, ": ", status.message()));
}

}  // namespace

TrainingJob::TrainingJob(std::string id, TrainingJobOptions options,
                         v1::StartTrainingRequest request,
                         CheckpointStore* store, TrainingObserver* observer)
    : id_(std::move(id)),
      options_(std::move(options)),
      request_(WithoutInlineDataset(std::move(request))),
      store_(store),
      observer_(observer) {}

absl::StatusOr<Dataset> TrainingJob::ReadDataset(DatasetFormat format) const {
  if (options_.dataset_file.empty()) return options_.dataset;
  absl::StatusOr<Dataset> dataset = LoadDataset(
      options_.dataset_file, format, options_.limits.max_dataset_bytes);
  if (!dataset.ok()) return Annotated(dataset.status(), "reading the dataset");
  MICROGPT_RETURN_IF_ERROR(
      CheckDataset(*dataset, options_.limits, "dataset_path"));
  return dataset;
}

absl::StatusOr<std::optional<int64_t>> TrainingJob::NewestVersion(
    const std::string& name) const {
  auto versions = store_->ListVersions(name);
  if (absl::IsNotFound(versions.status())) return std::nullopt;
  if (!versions.ok()) {
    return Annotated(versions.status(), absl::StrCat("listing \"", name, "\""));
  }
  if (versions->empty()) return std::nullopt;
  return versions->back();
}

absl::Status TrainingJob::NoVersionError(const std::string& name,
                                         absl::string_view purpose) const {
  return absl::NotFoundError(absl::StrCat(purpose, ": model \"", name,
                                          "\" has no published version under ",
                                          store_->root()));
}

absl::Status TrainingJob::CheckRequestedSizes(const ModelConfig& checkpoint,
                                              absl::string_view context) const {
  const RequestedSizes& requested = options_.requested_sizes;
  std::vector<std::string> differ;
  for (const auto& [field, asked, has] :
       {std::tuple{"n_embd", requested.n_embd, checkpoint.n_embd},
        std::tuple{"n_head", requested.n_head, checkpoint.n_head},
        std::tuple{"n_layer", requested.n_layer, checkpoint.n_layer},
        std::tuple{"block_size", requested.block_size,
                   checkpoint.block_size}}) {
    if (asked != 0 && asked != has) {
      differ.push_back(absl::StrCat("config.", field, " ", asked,
                                    " (the checkpoint's is ", has, ")"));
    }
  }
  if (differ.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      context, ": the request's sizes differ from the checkpoint's: ",
      absl::StrJoin(differ, ", "),
      "; a resumed run keeps its sizes (leave them out)"));
}

absl::StatusOr<TrainingOptions> TrainingJob::OptionsForModel(
    const ModelConfig& config) const {
  TrainingOptions training = options_.training;
  training.config = config;
  training.threads =
      options_.threads > 0 ? options_.threads : TrainingThreadsFor(config);
  training.group = options_.group;
  MICROGPT_RETURN_IF_ERROR(CheckTrainingFits(training, options_.limits));
  ConfigureBlasThreads(EngineWork::kTraining, config, training.threads);
  return training;
}

absl::Status TrainingJob::SameJobAsRankZero(
    const std::string& dataset_fingerprint) const {
  std::string request;
  request_.SerializeToString(&request);
  std::string rank_zero = request;
  options_.group->Broadcast(&rank_zero);
  std::string fingerprint = dataset_fingerprint;
  options_.group->Broadcast(&fingerprint);
  if (request != rank_zero) {
    v1::StartTrainingRequest theirs;
    theirs.ParseFromString(rank_zero);
    std::string differences;
    google::protobuf::util::MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&differences);
    differencer.Compare(theirs, request_);
    return absl::InvalidArgumentError(absl::StrCat(
        "this rank's arguments differ from rank 0's (every rank must run the "
        "same command): ",
        absl::StripAsciiWhitespace(differences)));
  }
  if (!dataset_fingerprint.empty() && dataset_fingerprint != fingerprint) {
    return absl::InvalidArgumentError(
        "this rank's dataset differs from rank 0's (the same path names "
        "another file here): every rank must read the same data");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingJob::Prepare() {
  // What a publisher killed mid-way left (only directories no live process
  // holds, so other trainers on the root are safe).
  if (absl::Status cleaned =
          Leads() ? store_->RemoveTemporaryDirectories() : absl::OkStatus();
      !cleaned.ok()) {
    LogWarning(absl::StrCat("job ", id_, ": ", cleaned.message()));
  }
  const std::string& name = options_.model;
  MICROGPT_ASSIGN_OR_RETURN(const std::optional<int64_t> newest,
                            NewestVersion(name));
  switch (options_.start) {
    case RunStart::kResume:
      if (!newest.has_value()) return NoVersionError(name, "resume");
      return ResumeFrom(*newest);
    case RunStart::kResumeIfExists:
      if (newest.has_value()) return ResumeFrom(*newest);
      break;
    case RunStart::kInitFrom:
    case RunStart::kNew:
      if (newest.has_value()) {
        // A model's versions are one lineage: a run that neither continues
        // it (fine-tuning from its own version) nor says it replaces it
        // would mix its versions (other sizes, vocabulary) with the old ones.
        const bool fine_tunes_itself = options_.start == RunStart::kInitFrom &&
                                       options_.init_from_model == name;
        if (!fine_tunes_itself && !options_.replace) {
          return absl::AlreadyExistsError(absl::StrCat(
              "model \"", name,
              "\" already has published versions (the latest is ", *newest,
              ") under ", store_->root(),
              ": continue it with resume (or resume_if_exists), start a new "
              "lineage over it with replace, or train under another name"));
        }
        version_base_ = *newest;
      }
      break;
  }
  MICROGPT_ASSIGN_OR_RETURN(const Dataset dataset,
                            ReadDataset(options_.dataset.format));
  if (options_.start == RunStart::kInitFrom) return StartFromPublished(dataset);
  ModelConfig config = options_.training.config;
  // Now with the dataset's vocabulary.
  config.vocab_size = TokenizerFor(dataset).vocab_size();
  MICROGPT_ASSIGN_OR_RETURN(const TrainingOptions training,
                            OptionsForModel(config));
  return TrainingRun::Start(training, dataset);
}

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingJob::StartFromPublished(
    const Dataset& dataset) {
  const std::string& name = options_.init_from_model;
  int64_t version = options_.init_from_version;
  if (version == 0) {
    MICROGPT_ASSIGN_OR_RETURN(const std::optional<int64_t> newest,
                              NewestVersion(name));
    if (!newest.has_value()) return NoVersionError(name, "init_from");
    version = *newest;
  }
  const std::string context =
      absl::StrCat("init_from version ", version, " of \"", name, "\"");
  auto model = store_->LoadModel(name, version);
  if (!model.ok()) return Annotated(model.status(), context);
  MICROGPT_ASSIGN_OR_RETURN(const TrainingOptions training,
                            OptionsForModel(model->config));
  auto run = TrainingRun::StartFrom(training, dataset, *std::move(model));
  if (!run.ok()) return Annotated(run.status(), context);
  return run;
}

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingJob::ResumeFrom(
    int64_t version) {
  const std::string& name = options_.model;
  const std::string context =
      absl::StrCat("resume from version ", version, " of \"", name, "\"");
  auto model = store_->LoadModel(name, version);
  if (!model.ok()) return Annotated(model.status(), context);
  MICROGPT_RETURN_IF_ERROR(CheckRequestedSizes(model->config, context));
  version_base_ = version - model->step;
  const ParameterLayout layout(model->config);
  auto optimizer = store_->LoadOptimizer(name, version, layout);
  if (!optimizer.ok()) {
    if (absl::IsNotFound(optimizer.status())) {
      return absl::FailedPreconditionError(absl::StrCat(
          context,
          ": the version has no optimizer state (a model-only export)"));
    }
    return Annotated(optimizer.status(), context);
  }
  // The curve so far, when the version recorded one (older ones did not).
  if (auto csv = store_->LoadExtraFile(name, version, kLossCurveFile);
      csv.ok()) {
    if (absl::StatusOr<LossCurve> curve = ParseLossCsv(*csv); curve.ok()) {
      loss_curve_ = *std::move(curve);
      loss_curve_.TruncateAfter(model->step);
    }
  }
  // A dataset file is read in the format the checkpoint was trained on.
  MICROGPT_ASSIGN_OR_RETURN(const Dataset dataset, ReadDataset(model->format));
  // The request's batch_size may be larger than the version's.
  MICROGPT_ASSIGN_OR_RETURN(const TrainingOptions training,
                            OptionsForModel(model->config));
  auto run = TrainingRun::Resume(training, dataset, *std::move(model),
                                 *std::move(optimizer));
  if (!run.ok()) return Annotated(run.status(), context);
  if ((*run)->done()) {
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": steps (", (*run)->options().steps,
        ") must be greater than the version's step (", (*run)->step(), ")"));
  }
  return run;
}

void TrainingJob::Run(
    const std::function<void(const absl::Status&)>& on_started) {
  // This thread runs the steps (and the calling share of TrainingGraph's).
  FlushDenormalsOnThisThread();
  if (observer_ != nullptr) {
    observer_->OnState(options_.model, id_, v1::JOB_STATE_RUNNING);
  }
  auto run = Prepare();
  if (options_.group != nullptr) {
    // Every rank reaches this point whatever its Prepare did.
    absl::Status same =
        SameJobAsRankZero(run.ok() ? (*run)->dataset_fingerprint() : "");
    absl::Status agreed = Agreed(run.ok() ? same : run.status());
    if (!agreed.ok()) run = agreed;
  }
  if (!run.ok()) {
    End(run.status());
    on_started(run.status());
    return;
  }
  start_time_ = absl::Now();
  last_event_time_ = start_time_;
  last_event_step_ = (*run)->step();
  {
    absl::MutexLock lock(&mu_);
    started_ = true;
    progress_.set_step((*run)->step());
    progress_.set_total_steps((*run)->options().steps);
  }
  const TrainingOptions& training = (*run)->options();
  LogInfo(absl::StrFormat(
      "job %s: training \"%s\" from step %d to %d (%d parameters, estimated "
      "memory %.1f MiB)",
      id_, options_.model, (*run)->step(), training.steps,
      training.config.num_parameters(),
      static_cast<double>(EstimateTrainingBytes(
          training.config, training.batch_size, training.threads)) /
          (1 << 20)));
  on_started(absl::OkStatus());
  Train(**run);
}

void TrainingJob::Train(TrainingRun& run) {
  // Losses since the last publish, at most kLossWindow of them.
  std::deque<float> recent_losses;
  while (!run.done()) {
    if (CancelAgreed()) return EndCancelled(run, &recent_losses);
    const StepStats stats = run.Step();
    tokens_ += stats.tokens;
    const bool publish = (options_.checkpoint_every > 0 &&
                          stats.step % options_.checkpoint_every == 0) ||
                         run.done();
    const bool evaluate = run.has_validation() && std::isfinite(stats.loss) &&
                          (publish || (options_.eval_every > 0 &&
                                       stats.step % options_.eval_every == 0));
    if (evaluate) Evaluate(run);
    UpdateProgress(run, &stats, /*force_event=*/run.done() || evaluate);
    if (!std::isfinite(stats.loss)) {
      End(absl::AbortedError(absl::StrFormat(
          "the loss is not finite at step %d (the run diverged; "
          "try a lower learning_rate)",
          stats.step)));
      return;
    }
    recent_losses.push_back(stats.loss);
    loss_curve_.Add(stats.step, stats.loss);
    if (evaluate) loss_curve_.AddValidation(stats.step, *latest_val_loss_);
    if (recent_losses.size() > kLossWindow) recent_losses.pop_front();

    if (publish) {
      if (!PublishStep(run, &recent_losses)) return;
      // A cancel asked for during this step: what it would publish is out.
      if (!run.done() && CancelAgreed()) {
        End(absl::CancelledError(
            absl::StrFormat("cancelled at step %d (published as version %d)",
                            run.step(), version_base_ + run.step())));
        return;
      }
    }
  }
  End(absl::OkStatus());
}

void TrainingJob::Evaluate(TrainingRun& run) {
  latest_val_loss_ = run.Evaluate();
  latest_val_step_ = run.step();
  LogInfo(absl::StrFormat("job %s: step %d: validation loss %.4f", id_,
                          run.step(), *latest_val_loss_));
}

void TrainingJob::EndCancelled(TrainingRun& run,
                               std::deque<float>* recent_losses) {
  // The steps since the last publish are kept, as a version a resumed run
  // continues from, unless the request said to discard them.
  if (options_.discard_on_cancel || recent_losses->empty()) {
    End(absl::CancelledError(absl::StrFormat(
        "cancelled at step %d%s", run.step(),
        options_.discard_on_cancel ? " (discard_on_cancel: not published)"
                                   : "")));
    return;
  }
  if (run.has_validation()) {
    Evaluate(run);
    loss_curve_.AddValidation(run.step(), *latest_val_loss_);
  }
  if (!PublishStep(run, recent_losses)) return;
  End(absl::CancelledError(
      absl::StrFormat("cancelled at step %d (published as version %d)",
                      run.step(), version_base_ + run.step())));
}

bool TrainingJob::PublishStep(TrainingRun& run,
                              std::deque<float>* recent_losses) {
  const double loss =
      std::accumulate(recent_losses->begin(), recent_losses->end(), 0.0) /
      static_cast<double>(recent_losses->size());
  // Evaluated at this very step when there is validation data.
  if (!Publish(run, loss, latest_val_loss_)) return false;
  recent_losses->clear();
  return true;
}

bool TrainingJob::Publish(TrainingRun& run, double loss,
                          std::optional<double> val_loss) {
  const int64_t version = version_base_ + run.step();
  // Rank 0 publishes; every rank learns whether it could.
  absl::Status status;
  if (Leads()) {
    const ModelCheckpoint model = run.ModelSnapshot(loss, val_loss);
    const OptimizerCheckpoint optimizer = run.OptimizerSnapshot();
    status = store_->Publish(
        options_.model, version, model, &optimizer, run.layout(),
        {{std::string(kLossCurveFile), FormatLossCsv(loss_curve_)}});
  }
  status = Agreed(status);
  if (!status.ok()) {
    End(absl::Status(status.code(),
                     absl::StrFormat("publishing version %d of \"%s\" under "
                                     "\"%s\" failed: %s",
                                     version, options_.model, store_->root(),
                                     status.message())));
    return false;
  }
  v1::TrainingEvent event;
  v1::CheckpointInfo* info = event.mutable_checkpoint_published();
  *info =
      CheckpointInfoOf(*store_, options_.model, version,
                       ModelRecord{run.step(), loss, run.format(), val_loss});
  if (Leads()) {
    LogInfo(absl::StrFormat("job %s: published %s (loss %.4f)", id_,
                            info->path(), loss));
  }
  if (observer_ != nullptr) observer_->OnPublished(options_.model, version);
  {
    absl::MutexLock lock(&mu_);
    latest_version_ = version;
    EmitLocked(event);
  }
  if (Leads()) ApplyRetention();
  return true;
}

void TrainingJob::ApplyRetention() {
  // A version that could not be deleted is tried again after the next
  // publish; training goes on either way.
  absl::StatusOr<std::vector<int64_t>> deleted =
      store_->ApplyRetention(options_.model);
  if (!deleted.ok()) {
    LogWarning(absl::StrFormat("job %s: retention of \"%s\": %s", id_,
                               options_.model, deleted.status().message()));
  } else if (!deleted->empty()) {
    LogInfo(absl::StrFormat(
        "job %s: retention (keep %d) deleted version(s) %s of \"%s\"", id_,
        store_->retention().keep_versions, absl::StrJoin(*deleted, ", "),
        options_.model));
  }
}

void TrainingJob::UpdateProgress(const TrainingRun& run, const StepStats* stats,
                                 bool force_event) {
  const absl::Time now = absl::Now();
  const double elapsed = absl::ToDoubleSeconds(now - start_time_);
  v1::TrainingProgress progress;
  progress.set_step(run.step());
  progress.set_total_steps(run.options().steps);
  progress.set_loss(stats->loss);
  progress.set_learning_rate(stats->lr);
  progress.set_tokens_per_second(elapsed > 0 ? tokens_ / elapsed : 0.0);
  progress.set_elapsed_seconds(elapsed);
  progress.set_tokens(tokens_);
  if (latest_val_loss_.has_value()) {
    progress.set_val_loss(static_cast<float>(*latest_val_loss_));
    progress.set_val_step(latest_val_step_);
  }
  if (observer_ != nullptr) {
    observer_->OnProgress(options_.model, id_, progress);
  }

  const int64_t step_interval = std::max<int64_t>(1, run.options().steps / 100);
  const bool emit = force_event || now - last_event_time_ >= kEventInterval ||
                    run.step() - last_event_step_ >= step_interval;
  absl::MutexLock lock(&mu_);
  progress_ = progress;
  if (emit) {
    last_event_time_ = now;
    last_event_step_ = run.step();
    v1::TrainingEvent event;
    *event.mutable_progress() = progress;
    EmitLocked(event);
  }
}

void TrainingJob::End(const absl::Status& status) {
  const v1::JobState state = status.ok() ? v1::JOB_STATE_SUCCEEDED
                             : absl::IsCancelled(status)
                                 ? v1::JOB_STATE_CANCELLED
                                 : v1::JOB_STATE_FAILED;
  if (observer_ != nullptr) observer_->OnState(options_.model, id_, state);
  std::vector<std::function<void(const v1::TrainingJob&)>> callbacks;
  v1::TrainingJob final_job;
  {
    absl::MutexLock lock(&mu_);
    state_ = state;
    status_ = status;
    final_job = SnapshotLocked();
    v1::TrainingEvent event;
    *event.mutable_finished() = final_job;
    EmitLocked(event);
    for (const auto& watcher : watchers_) watcher->Close(absl::OkStatus());
    watchers_.clear();
    callbacks.swap(on_ended_);
  }
  std::string message = absl::StrFormat("job %s (\"%s\") %s", id_,
                                        options_.model, JobStateName(state));
  if (final_job.has_progress()) {
    absl::StrAppendFormat(&message, " at step %d/%d",
                          final_job.progress().step(),
                          final_job.progress().total_steps());
  }
  if (!final_job.error().empty())
    absl::StrAppend(&message, ": ", final_job.error());
  Log(state == v1::JOB_STATE_FAILED ? LogLevel::kError : LogLevel::kInfo,
      message);
  for (const auto& callback : callbacks) callback(final_job);
}

void TrainingJob::Cancel() { cancel_requested_.store(true); }

v1::TrainingJob TrainingJob::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return SnapshotLocked();
}

v1::TrainingJob TrainingJob::SnapshotLocked() const {
  v1::TrainingJob job;
  job.set_job_id(id_);
  job.set_model(options_.model);
  job.set_state(state_);
  if (started_) *job.mutable_progress() = progress_;
  job.set_latest_version(latest_version_);
  if (state_ == v1::JOB_STATE_FAILED)
    job.set_error(std::string(status_.message()));
  *job.mutable_request() = request_;
  return job;
}

v1::JobState TrainingJob::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

bool TrainingJob::ended() const { return state() != v1::JOB_STATE_RUNNING; }

absl::Status TrainingJob::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

void TrainingJob::WaitUntilEnded() const {
  absl::MutexLock lock(&mu_);
  auto has_ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return state_ != v1::JOB_STATE_RUNNING;
  };
  mu_.Await(absl::Condition(&has_ended));
}

void TrainingJob::Subscribe(std::shared_ptr<JobWatcher> watcher) {
  absl::MutexLock lock(&mu_);
  if (started_) {
    v1::TrainingEvent event;
    *event.mutable_progress() = progress_;
    watcher->Push(std::move(event));
  }
  if (state_ != v1::JOB_STATE_RUNNING) {
    v1::TrainingEvent event;
    *event.mutable_finished() = SnapshotLocked();
    watcher->Push(std::move(event));
    watcher->Close(absl::OkStatus());
    return;
  }
  watchers_.push_back(std::move(watcher));
}

void TrainingJob::Unsubscribe(const JobWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(
      std::remove_if(watchers_.begin(), watchers_.end(),
                     [watcher](const auto& w) { return w.get() == watcher; }),
      watchers_.end());
}

void TrainingJob::OnEnded(
    std::function<void(const v1::TrainingJob&)> callback) {
  v1::TrainingJob final_job;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == v1::JOB_STATE_RUNNING) {
      on_ended_.push_back(std::move(callback));
      return;
    }
    final_job = SnapshotLocked();
  }
  callback(final_job);
}

void TrainingJob::EmitLocked(const v1::TrainingEvent& event) {
  for (const auto& watcher : watchers_) watcher->Push(event);
}

}  // namespace microgpt
