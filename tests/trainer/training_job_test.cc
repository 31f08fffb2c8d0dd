#include "trainer/training_job.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "common/checkpoint_store.h"
#include "common/denormals.h"
#include "common/loss_curve.h"
#include "tests/trainer/trainer_test_util.h"
#include "trainer/checkpoint_listing.h"
#include "trainer/job_options.h"

namespace microgpt {
namespace {

using ::microgpt::testing::SmallDocuments;
using ::microgpt::testing::SmallRequest;
using ::microgpt::testing::StatusIs;
using ::microgpt::testing::TempDir;
using ::microgpt::testing::VersionsOnDisk;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Runs a job built from `request` to its end on this thread and returns every
// event it emitted, in order.
struct JobResult {
  absl::Status started;
  std::vector<v1::TrainingEvent> events;
  v1::TrainingJob job;
  absl::Status status;
};

JobResult RunJob(const v1::StartTrainingRequest& request,
                 CheckpointStore* store) {
  auto options = JobOptionsFromRequest(request);
  EXPECT_TRUE(options.ok()) << options.status();
  TrainingJob job("test", *options, request, store);
  auto watcher = std::make_shared<JobWatcher>(nullptr, 1 << 16);
  job.Subscribe(watcher);
  JobResult result;
  job.Run([&](const absl::Status& s) { result.started = s; });
  while (auto event = watcher->Pop()) result.events.push_back(*event);
  result.job = job.Snapshot();
  result.status = job.status();
  return result;
}

std::vector<float> ProgressLosses(const std::vector<v1::TrainingEvent>& events,
                                  int64_t from_step, int64_t to_step) {
  std::vector<float> losses;
  for (const auto& e : events) {
    if (e.has_progress() && e.progress().step() >= from_step &&
        e.progress().step() <= to_step) {
      losses.push_back(e.progress().loss());
    }
  }
  return losses;
}

double Mean(const std::vector<float>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}

// Records on which threads the job reported, whether they flushed subnormal
// floats (common/denormals.h): the job's thread runs the model math.
class FlushRecorder final : public TrainingObserver {
 public:
  void OnState(absl::string_view, absl::string_view, v1::JobState) override {
    Record();
  }
  void OnProgress(absl::string_view, absl::string_view,
                  const v1::TrainingProgress&) override {
    Record();
  }
  void OnPublished(absl::string_view, int64_t) override { Record(); }
  int calls = 0, flushed = 0;

 private:
  void Record() {
    ++calls;
    if (DenormalsFlushedOnThisThread()) ++flushed;
  }
};

TEST(TrainingJobTest, RunsWithDenormalsFlushedAndReportsToItsObserver) {
  TempDir dir;
  CheckpointStore store(dir.path());
  const v1::StartTrainingRequest request = SmallRequest("m", 20);
  auto options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok()) << options.status();
  FlushRecorder observer;
  TrainingJob job("test", *options, request, &store, &observer);
  // On a thread of its own that did not ask for flushing, as the service's
  // worker is.
  std::thread([&] { job.Run([](const absl::Status&) {}); }).join();
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  // RUNNING, at least a progress per step, one publish, SUCCEEDED.
  EXPECT_GE(observer.calls, 1 + 20 + 1 + 1);
  EXPECT_EQ(observer.flushed, observer.calls);
}

TEST(TrainingJobTest, PublishesEveryCheckpointEveryAndAtTheEnd) {
  TempDir dir;
  CheckpointStore store(dir.path());
  v1::StartTrainingRequest request = SmallRequest("m", 50);
  request.set_checkpoint_every(20);
  JobResult result = RunJob(request, &store);
  ASSERT_TRUE(result.started.ok()) << result.started;
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(result.job.latest_version(), 50);
  EXPECT_EQ(result.job.progress().step(), 50);
  EXPECT_EQ(result.job.progress().total_steps(), 50);
  EXPECT_GT(result.job.progress().tokens_per_second(), 0);
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(20, 40, 50));

  // With fewer than 200 steps every step gets a progress event, so the
  // published losses can be recomputed: the mean since the previous publish.
  std::vector<int64_t> published;
  for (const auto& e : result.events) {
    if (e.has_checkpoint_published())
      published.push_back(e.checkpoint_published().version());
  }
  EXPECT_THAT(published, ElementsAre(20, 40, 50));
  ASSERT_EQ(ProgressLosses(result.events, 1, 50).size(), 50u);
  auto listed = ListCheckpointInfos(store, "m");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 3u);
  const std::pair<int64_t, int64_t> ranges[] = {{1, 20}, {21, 40}, {41, 50}};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*listed)[i].step(), ranges[i].second);
    EXPECT_NEAR(
        (*listed)[i].loss(),
        Mean(ProgressLosses(result.events, ranges[i].first, ranges[i].second)),
        1e-4)
        << "version " << ranges[i].second;
  }
  // The finished event is the last one.
  ASSERT_FALSE(result.events.empty());
  EXPECT_TRUE(result.events.back().has_finished());
  EXPECT_EQ(result.events.back().finished().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST(TrainingJobTest, LossOfAVersionIsTheMeanOfAtMostTheLast100Steps) {
  TempDir dir;
  CheckpointStore store(dir.path());
  JobResult result = RunJob(SmallRequest("m", 150), &store);
  ASSERT_TRUE(result.status.ok()) << result.status;
  // 150 steps: one event per step (1% of 150 rounds to 1).
  ASSERT_EQ(ProgressLosses(result.events, 1, 150).size(), 150u);
  auto model = store.LoadModel("m", 150);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->step, 150);
  EXPECT_NEAR(model->loss, Mean(ProgressLosses(result.events, 51, 150)), 1e-4);
}

// Runs a long job, cancels it after a few steps and returns every event the
// watcher saw after the cancel.
std::vector<v1::TrainingEvent> CancelAfterAFewSteps(
    const v1::StartTrainingRequest& request, CheckpointStore* store,
    TrainingJob** job_out, std::unique_ptr<TrainingJob>* holder) {
  auto options = JobOptionsFromRequest(request);
  EXPECT_TRUE(options.ok()) << options.status();
  *holder = std::make_unique<TrainingJob>("test", *options, request, store);
  TrainingJob& job = **holder;
  *job_out = &job;
  auto watcher = std::make_shared<JobWatcher>(nullptr, 1 << 16);
  job.Subscribe(watcher);
  std::thread runner([&] { job.Run([](const absl::Status&) {}); });
  while (true) {
    auto event = watcher->PopWithTimeout(absl::Seconds(30));
    EXPECT_TRUE(event.has_value());
    if (!event.has_value()) break;
    if (event->has_progress() && event->progress().step() >= 3) break;
  }
  job.Cancel();
  job.WaitUntilEnded();
  runner.join();
  std::vector<v1::TrainingEvent> after;
  while (auto event = watcher->Pop()) after.push_back(*event);
  return after;
}

TEST(TrainingJobTest, CancelPublishesTheStepReached) {
  TempDir dir;
  CheckpointStore store(dir.path());
  TrainingJob* job;
  std::unique_ptr<TrainingJob> holder;
  const std::vector<v1::TrainingEvent> after = CancelAfterAFewSteps(
      SmallRequest("m", 100'000'000), &store, &job, &holder);
  EXPECT_EQ(job->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(job->status(),
              StatusIs(absl::StatusCode::kCancelled, "published as version"));
  const int64_t reached = job->Snapshot().progress().step();
  EXPECT_GE(reached, 3);
  EXPECT_EQ(job->Snapshot().latest_version(), reached);
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(reached));
  // The watchers see the version, then the end.
  ASSERT_GE(after.size(), 2u);
  EXPECT_TRUE(after[after.size() - 2].has_checkpoint_published());
  EXPECT_EQ(after[after.size() - 2].checkpoint_published().version(), reached);
  EXPECT_EQ(after.back().finished().state(), v1::JOB_STATE_CANCELLED);
  // And a resumed run continues from it.
  v1::StartTrainingRequest resume = SmallRequest("m", reached + 2);
  resume.set_resume(true);
  JobResult resumed = RunJob(resume, &store);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"),
              ElementsAre(reached, reached + 2));
}

TEST(TrainingJobTest, DiscardOnCancelPublishesNothing) {
  TempDir dir;
  CheckpointStore store(dir.path());
  v1::StartTrainingRequest request = SmallRequest("m", 100'000'000);
  request.set_discard_on_cancel(true);
  TrainingJob* job;
  std::unique_ptr<TrainingJob> holder;
  CancelAfterAFewSteps(request, &store, &job, &holder);
  EXPECT_EQ(job->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(job->Snapshot().latest_version(), 0);
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), IsEmpty());
}

TEST(TrainingJobTest, ANewRunUnderANameWithVersionsIsRefused) {
  TempDir dir;
  CheckpointStore store(dir.path());
  ASSERT_TRUE(RunJob(SmallRequest("m", 4), &store).status.ok());
  // Other sizes: nothing is trained, nothing changes on disk.
  v1::StartTrainingRequest again = SmallRequest("m", 4);
  again.mutable_config()->set_n_embd(16);
  JobResult refused = RunJob(again, &store);
  EXPECT_THAT(refused.started,
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "model \"m\" already has published versions (the "
                       "latest is 4)"));
  EXPECT_EQ(refused.job.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(4));
  EXPECT_THAT(refused.started,
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "start a new lineage over it with replace"));
  // Fine-tuning another model's weights into it is refused too; under a new
  // name it is a new run.
  ASSERT_TRUE(RunJob(SmallRequest("other", 2), &store).status.ok());
  v1::StartTrainingRequest tune = SmallRequest("m", 4);
  tune.clear_config();
  tune.set_init_from("other");
  EXPECT_THAT(RunJob(tune, &store).started,
              StatusIs(absl::StatusCode::kAlreadyExists, "already has"));
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(4));
  tune.set_model("m2");
  EXPECT_TRUE(RunJob(tune, &store).status.ok());
}

TEST(TrainingJobTest, ReplaceStartsALineageNumberedOnFromTheLatest) {
  TempDir dir;
  CheckpointStore store(dir.path());
  ASSERT_TRUE(RunJob(SmallRequest("m", 4), &store).status.ok());
  // Other sizes, explicitly: versions 4 + step, each newer than version 4.
  v1::StartTrainingRequest replace = SmallRequest("m", 3);
  replace.mutable_config()->set_n_embd(16);
  replace.set_checkpoint_every(2);
  replace.set_replace(true);
  JobResult replaced = RunJob(replace, &store);
  ASSERT_TRUE(replaced.status.ok()) << replaced.status;
  EXPECT_EQ(replaced.job.latest_version(), 7);
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(4, 6, 7));
  absl::StatusOr<ModelCheckpoint> newest = store.LoadModel("m", 7);
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(newest->step, 3);
  EXPECT_EQ(newest->config.n_embd, 16);
  EXPECT_EQ(store.LoadModel("m", 4)->config.n_embd, 8);

  // Resuming the new lineage continues its steps, still numbered on.
  v1::StartTrainingRequest resume = SmallRequest("m", 5);
  resume.clear_config();
  resume.set_resume(true);
  JobResult resumed = RunJob(resume, &store);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(4, 6, 7, 9));
  EXPECT_EQ(store.LoadModel("m", 9)->step, 5);

  // Fine-tuning the model from its own latest version continues the lineage
  // without replace.
  v1::StartTrainingRequest tune = SmallRequest("m", 2);
  tune.clear_config();
  tune.set_init_from("m");
  JobResult tuned = RunJob(tune, &store);
  ASSERT_TRUE(tuned.status.ok()) << tuned.status;
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(4, 6, 7, 9, 11));
  EXPECT_EQ(store.LoadModel("m", 11)->config.n_embd, 16);

  // replace under a name without versions is a first lineage.
  replace.set_model("fresh");
  ASSERT_TRUE(RunJob(replace, &store).status.ok());
  EXPECT_THAT(VersionsOnDisk(dir.path(), "fresh"), ElementsAre(2, 3));
}

TEST(TrainingJobTest, ResumeIfExistsStartsThenContinues) {
  TempDir dir;
  CheckpointStore store(dir.path());
  // The same request, as a Job's first run and its retries.
  v1::StartTrainingRequest request = SmallRequest("m", 6);
  request.set_resume_if_exists(true);
  request.set_checkpoint_every(2);
  JobResult first = RunJob(request, &store);
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(2, 4, 6));
  request.set_steps(8);
  JobResult retry = RunJob(request, &store);
  ASSERT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(2, 4, 6, 8));
  // The same steps again: nothing left to do, as with resume.
  EXPECT_THAT(RunJob(request, &store).started,
              StatusIs(absl::StatusCode::kFailedPrecondition, "steps"));
}

TEST(TrainingJobTest, ResumeWithOtherSizesIsRefusedNamingThem) {
  TempDir dir;
  CheckpointStore store(dir.path());
  ASSERT_TRUE(RunJob(SmallRequest("m", 4), &store).status.ok());
  v1::StartTrainingRequest resume = SmallRequest("m", 8);
  resume.set_resume(true);
  resume.mutable_config()->set_n_embd(16);
  resume.mutable_config()->set_n_head(4);
  EXPECT_THAT(RunJob(resume, &store).started,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "config.n_embd 16 (the checkpoint's is 8), "
                       "config.n_head 4 (the checkpoint's is 2)"));
  // The same sizes, or none, resume.
  resume.mutable_config()->set_n_embd(8);
  resume.mutable_config()->set_n_head(2);
  EXPECT_TRUE(RunJob(resume, &store).status.ok());
}

TEST(TrainingJobTest, LateWatcherGetsTheLatestProgressThenFinished) {
  TempDir dir;
  CheckpointStore store(dir.path());
  v1::StartTrainingRequest request = SmallRequest("m", 30);
  auto options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok());
  TrainingJob job("test", *options, request, &store);
  job.Run([](const absl::Status&) {});
  auto watcher = std::make_shared<JobWatcher>();
  job.Subscribe(watcher);
  auto first = watcher->Pop();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->has_progress());
  EXPECT_EQ(first->progress().step(), 30);
  auto second = watcher->Pop();
  ASSERT_TRUE(second.has_value());
  ASSERT_TRUE(second->has_finished());
  EXPECT_EQ(second->finished().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_FALSE(watcher->Pop().has_value());

  bool called = false;
  job.OnEnded([&](const v1::TrainingJob& j) {
    called = true;
    EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED);
  });
  EXPECT_TRUE(called);
}

TEST(TrainingJobTest, ResumeContinuesFromTheLatestVersion) {
  TempDir dir;
  CheckpointStore store(dir.path());
  v1::StartTrainingRequest first = SmallRequest("m", 10);
  first.set_checkpoint_every(5);
  ASSERT_TRUE(RunJob(first, &store).status.ok());

  v1::StartTrainingRequest second = SmallRequest("m", 14);
  second.set_resume(true);
  second.set_checkpoint_every(1);
  JobResult result = RunJob(second, &store);
  ASSERT_TRUE(result.started.ok()) << result.started;
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::vector<int64_t> steps;
  for (const auto& e : result.events) {
    if (e.has_progress()) steps.push_back(e.progress().step());
  }
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.front(), 11);  // the first step after version 10
  EXPECT_EQ(steps.back(), 14);
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"),
              ElementsAre(5, 10, 11, 12, 13, 14));
}

TEST(TrainingJobTest, ResumeErrors) {
  TempDir dir;
  CheckpointStore store(dir.path());
  v1::StartTrainingRequest request = SmallRequest("m", 10);
  request.set_resume(true);
  JobResult none = RunJob(request, &store);
  EXPECT_THAT(none.started,
              StatusIs(absl::StatusCode::kNotFound, "no published version"));
  EXPECT_EQ(none.job.state(), v1::JOB_STATE_FAILED);

  ASSERT_TRUE(RunJob(SmallRequest("m", 10), &store).status.ok());
  JobResult done = RunJob(request, &store);  // already at step 10
  EXPECT_THAT(done.started,
              StatusIs(absl::StatusCode::kFailedPrecondition, "steps"));
}

TEST(TrainingJobTest, AnUnusableRootFailsTheJobBeforeTraining) {
  TempDir dir;
  const std::string root = dir.Sub("not-a-directory");
  ::microgpt::testing::WriteFile(root, "a file where the root should be");
  CheckpointStore store(root);
  JobResult result = RunJob(SmallRequest("m", 5), &store);
  // The lineage check lists the model's versions first, and says why it
  // cannot; no step is run.
  EXPECT_FALSE(result.started.ok());
  EXPECT_THAT(result.started.message(), ::testing::HasSubstr(root));
  EXPECT_THAT(result.started.message(),
              ::testing::HasSubstr("Not a directory"));
  EXPECT_EQ(result.job.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(result.job.progress().step(), 0);
  EXPECT_EQ(result.job.latest_version(), 0);
}

TEST(TrainingJobTest, RetentionKeepsTheNewestAndLeasedVersions) {
  TempDir dir;
  RetentionPolicy retention;
  retention.keep_versions = 2;
  CheckpointStore store(dir.path(), retention);
  // A generator serving version 10 from this root.
  ASSERT_TRUE(store.WriteLease("generator-1", {{"m", {10}}}).ok());
  v1::StartTrainingRequest request = SmallRequest("m", 50);
  request.set_checkpoint_every(10);
  JobResult result = RunJob(request, &store);
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::vector<int64_t> published;
  for (const auto& e : result.events) {
    if (e.has_checkpoint_published())
      published.push_back(e.checkpoint_published().version());
  }
  EXPECT_THAT(published, ElementsAre(10, 20, 30, 40, 50));
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(10, 40, 50));
  for (int64_t v : {10, 40, 50}) {
    EXPECT_TRUE(store.LoadModel("m", v).ok()) << v;
  }

  // Resuming works from what retention left, and the lease, once gone, no
  // longer protects version 10.
  ASSERT_TRUE(store.RemoveLease("generator-1").ok());
  request.set_steps(60);
  request.set_resume(true);
  ASSERT_TRUE(RunJob(request, &store).status.ok());
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(50, 60));
}

TEST(TrainingJobTest, OrphanedTemporaryDirectoriesAreRemovedAtStart) {
  TempDir dir;
  CheckpointStore store(dir.path());
  ASSERT_TRUE(RunJob(SmallRequest("m", 5), &store).status.ok());
  // What a trainer killed inside a publish leaves: a complete temporary
  // directory that nobody holds.
  const std::string orphan = dir.Sub("m/.tmp-10-4242-0011223344556677");
  std::filesystem::create_directories(orphan);
  ::microgpt::testing::WriteFile(orphan + "/model.safetensors", "partial");
  v1::StartTrainingRequest request = SmallRequest("m", 10);
  request.set_resume(true);
  ASSERT_TRUE(RunJob(request, &store).status.ok());
  EXPECT_FALSE(std::filesystem::exists(orphan));
  EXPECT_THAT(VersionsOnDisk(dir.path(), "m"), ElementsAre(5, 10));
}

TEST(TrainingJobTest, DiskFullFailsTheJobWithThePathAndTheReason) {
  TempDir dir;
  const std::string root = dir.Sub("root");
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  // A 256 KiB tmpfs of our own, in a private mount namespace that goes away
  // with the process.
  if (::unshare(CLONE_NEWNS) != 0 ||
      ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      ::mount("tmpfs", root.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs (" << std::strerror(errno)
                 << "); needs CAP_SYS_ADMIN";
  }
  CheckpointStore store(root);
  ASSERT_TRUE(RunJob(SmallRequest("m", 5), &store).status.ok());
  {  // Fill the rest of the file system.
    std::ofstream filler(root + "/filler", std::ios::binary);
    const std::string block(4096, 'x');
    while (filler.write(block.data(), block.size()) && filler.flush()) {
    }
  }
  v1::StartTrainingRequest request = SmallRequest("m", 10);
  request.set_resume(true);
  JobResult result = RunJob(request, &store);
  ASSERT_TRUE(result.started.ok()) << result.started;
  EXPECT_EQ(result.job.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(
      result.job.error(),
      ::testing::AllOf(::testing::HasSubstr("publishing version 10"),
                       ::testing::HasSubstr(root + "/m/.tmp-10-"),
                       ::testing::HasSubstr("No space left on device")));
  ASSERT_FALSE(result.events.empty());
  EXPECT_EQ(result.events.back().finished().error(), result.job.error());
  EXPECT_THAT(VersionsOnDisk(root, "m"), ElementsAre(5));
  EXPECT_TRUE(store.LoadModel("m", 5).ok());
  std::vector<std::string> entries;
  for (const auto& entry : std::filesystem::directory_iterator(root + "/m")) {
    entries.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(entries, ElementsAre("5"));  // no temporary directory left
  ::umount2(root.c_str(), MNT_DETACH);
}

TEST(TrainingJobTest, MissingDatasetFileIsNotFound) {
  TempDir dir;
  CheckpointStore store(dir.path());
  v1::StartTrainingRequest request = SmallRequest("m", 5);
  request.set_dataset_path(dir.Sub("missing.txt"));
  JobResult result = RunJob(request, &store);
  EXPECT_THAT(result.started, StatusIs(absl::StatusCode::kNotFound, ""));
}

TEST(TrainingJobTest, RequestIsReportedWithoutInlineDocuments) {
  TempDir dir;
  CheckpointStore store(dir.path());
  JobResult result = RunJob(SmallRequest("m", 2), &store);
  EXPECT_TRUE(result.job.request().has_inline_dataset());
  EXPECT_EQ(result.job.request().inline_dataset().documents_size(), 0);
  EXPECT_EQ(result.job.request().steps(), 2);
  EXPECT_EQ(result.job.model(), "m");
}

// A text request over SmallDocuments() joined into lines.
v1::StartTrainingRequest TextRequest(const std::string& model, int64_t steps) {
  v1::StartTrainingRequest request = SmallRequest(model, steps);
  std::string text;
  for (int copy = 0; copy < 8; ++copy) {
    for (const std::string& d : SmallDocuments()) text += d + "\n";
  }
  request.set_format(v1::DATASET_FORMAT_TEXT);
  request.mutable_inline_dataset()->clear_documents();
  request.mutable_inline_dataset()->set_text(text);
  return request;
}

TEST(TrainingJobTest, ValidationIsReportedEverywhere) {
  TempDir dir;
  CheckpointStore store(dir.path());
  v1::StartTrainingRequest request = TextRequest("t", 30);
  request.set_val_fraction(0.2f);
  request.set_eval_every(10);
  request.set_checkpoint_every(15);
  JobResult result = RunJob(request, &store);
  ASSERT_TRUE(result.status.ok()) << result.status;
  // Evaluated at 10, 15 (publish), 20, 30 (publish and eval_every): each
  // such step has a progress event carrying its own validation loss.
  std::vector<int64_t> evaluated;
  std::map<int64_t, float> val_at;
  for (const auto& e : result.events) {
    if (e.has_progress() && e.progress().has_val_loss() &&
        e.progress().val_step() == e.progress().step()) {
      evaluated.push_back(e.progress().step());
      val_at[e.progress().step()] = e.progress().val_loss();
    }
    if (e.has_progress() && e.progress().step() < 10) {
      EXPECT_FALSE(e.progress().has_val_loss());
    }
  }
  EXPECT_THAT(evaluated, ElementsAre(10, 15, 20, 30));
  std::vector<float> published_val;
  for (const auto& e : result.events) {
    if (!e.has_checkpoint_published()) continue;
    const v1::CheckpointInfo& c = e.checkpoint_published();
    ASSERT_TRUE(c.has_val_loss());
    EXPECT_FLOAT_EQ(c.val_loss(), val_at[c.version()]);
    EXPECT_EQ(c.format(), v1::DATASET_FORMAT_TEXT);
  }
  // The version's metadata and listing, and its loss.csv.
  auto listed = ListCheckpointInfos(store, "t");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_FLOAT_EQ((*listed)[1].val_loss(), val_at[30]);
  EXPECT_EQ((*listed)[1].format(), v1::DATASET_FORMAT_TEXT);
  auto model = store.LoadModel("t", 30);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(model->format, DatasetFormat::kText);
  ASSERT_TRUE(model->val_loss.has_value());
  EXPECT_FLOAT_EQ(*model->val_loss, val_at[30]);
  auto csv = store.LoadExtraFile("t", 30, kLossCurveFile);
  ASSERT_TRUE(csv.ok());
  auto curve = ParseLossCsv(*csv);
  ASSERT_TRUE(curve.ok());
  std::vector<int64_t> with_val;
  for (const LossPoint& p : curve->points()) {
    if (p.val_loss.has_value()) with_val.push_back(p.step);
  }
  EXPECT_THAT(with_val, ElementsAre(10, 15, 20, 30));
}

TEST(TrainingJobTest, ResumeReadsTheFileInTheCheckpointsFormat) {
  TempDir dir;
  CheckpointStore store(dir.path());
  v1::StartTrainingRequest first = TextRequest("t", 6);
  const std::string path = dir.Sub("text.txt");
  std::ofstream(path) << first.inline_dataset().text();
  first.set_dataset_path(path);
  ASSERT_TRUE(RunJob(first, &store).status.ok());
  // The request says nothing of the format (as `--resume` alone does).
  v1::StartTrainingRequest second = SmallRequest("t", 9);
  second.set_dataset_path(path);
  second.set_resume(true);
  JobResult resumed = RunJob(second, &store);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  EXPECT_EQ(store.LoadModel("t", 9)->format, DatasetFormat::kText);
}

TEST(TrainingJobTest, InitFromStartsANewRunFromPublishedWeights) {
  TempDir dir;
  CheckpointStore store(dir.path());
  v1::StartTrainingRequest tune = TextRequest("tuned", 4);
  tune.clear_config();
  tune.set_init_from("base");
  EXPECT_THAT(RunJob(tune, &store).started,
              StatusIs(absl::StatusCode::kNotFound,
                       "init_from: model \"base\" has no published version"));

  v1::StartTrainingRequest base = SmallRequest("base", 6);
  base.set_checkpoint_every(3);
  ASSERT_TRUE(RunJob(base, &store).status.ok());
  tune.set_init_from("base:3");
  // Newlines are not in a documents model's vocabulary.
  EXPECT_THAT(RunJob(tune, &store).started,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "init_from version 3 of \"base\": the dataset has "
                       "characters the model's vocabulary lacks: '\\n'"));
  tune.set_format(v1::DATASET_FORMAT_DOCUMENTS);
  tune.mutable_inline_dataset()->clear_text();
  tune.mutable_inline_dataset()->add_documents("emma");
  tune.mutable_inline_dataset()->add_documents("ella");
  JobResult tuned = RunJob(tune, &store);
  ASSERT_TRUE(tuned.status.ok()) << tuned.status;
  // A new run: its own versions from step 1, the base's sizes.
  EXPECT_THAT(VersionsOnDisk(dir.path(), "tuned"), ElementsAre(4));
  EXPECT_EQ(store.LoadModel("tuned", 4)->config,
            store.LoadModel("base", 3)->config);
  tune.set_model("tuned2");
  tune.set_init_from("base:5");
  EXPECT_THAT(RunJob(tune, &store).started,
              StatusIs(absl::StatusCode::kNotFound, ""));
}

}  // namespace
}  // namespace microgpt
