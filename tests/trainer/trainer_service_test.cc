// The Trainer service end to end: a real gRPC server on 127.0.0.1 (port
// picked by the system), the generated stub as client, temporary directories.
#include "trainer/trainer_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "tests/trainer/trainer_test_util.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;
using ::microgpt::testing::SmallRequest;
using ::microgpt::testing::TempDir;
using ::microgpt::testing::VersionsOnDisk;
using ::microgpt::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kForever =
    100'000'000;  // steps of a job that only ends when cancelled

MATCHER_P2(GrpcStatusIs, code, substring, "") {
  if (arg.error_code() != code) {
    *result_listener << "code is " << arg.error_code() << ": "
                     << arg.error_message();
    return false;
  }
  if (arg.error_message().find(substring) == std::string::npos) {
    *result_listener << "message is \"" << arg.error_message() << "\"";
    return false;
  }
  return true;
}

class TrainerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.Sub("data"));
    fs::create_directories(dir_.Sub("ckpt"));
    WriteFile(dir_.Sub("data/names.txt"), "emma\nolivia\nava\nmia\nsophia\n");
    WriteFile(dir_.Sub("secret.txt"), "outside\n");
    StartServer(dir_.Sub("ckpt"));
  }

  void TearDown() override { StopServer(); }

  void StartServer(const std::string& checkpoint_root) {
    TrainerServiceOptions options;
    options.checkpoint_root = checkpoint_root;
    options.data_root = dir_.Sub("data");
    service_ = std::make_unique<TrainerServiceImpl>(options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    stub_ = v1::Trainer::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                            grpc::InsecureChannelCredentials()));
  }

  void StopServer() {
    if (service_) service_->Shutdown();  // as the binary does: job first
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
    service_.reset();
  }

  static void SetDeadline(grpc::ClientContext& context, int seconds = 60) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(seconds));
  }

  grpc::Status Start(const v1::StartTrainingRequest& request,
                     std::string* job_id) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::StartTrainingResponse response;
    grpc::Status status = stub_->StartTraining(&context, request, &response);
    if (job_id != nullptr) *job_id = response.job_id();
    return status;
  }

  std::string StartOk(const v1::StartTrainingRequest& request) {
    std::string job_id;
    grpc::Status status = Start(request, &job_id);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_FALSE(job_id.empty());
    return job_id;
  }

  // Every event of a job's watch stream, until it ends.
  grpc::Status Watch(const std::string& job_id,
                     std::vector<v1::TrainingEvent>* events) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::WatchTrainingRequest request;
    request.set_job_id(job_id);
    auto reader = stub_->WatchTraining(&context, request);
    v1::TrainingEvent event;
    while (reader->Read(&event)) events->push_back(event);
    return reader->Finish();
  }

  v1::TrainingJob WaitForEnd(const std::string& job_id) {
    std::vector<v1::TrainingEvent> events;
    grpc::Status status = Watch(job_id, &events);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (events.empty() || !events.back().has_finished()) {
      ADD_FAILURE() << "no finished event";
      return {};
    }
    return events.back().finished();
  }

  // Watches a job until it has made `steps` steps, then stops watching.
  void WaitForSteps(const std::string& job_id, int64_t steps) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::WatchTrainingRequest request;
    request.set_job_id(job_id);
    auto reader = stub_->WatchTraining(&context, request);
    v1::TrainingEvent event;
    while (reader->Read(&event)) {
      if (event.has_progress() && event.progress().step() >= steps) break;
    }
    context.TryCancel();
    reader->Finish();
  }

  grpc::Status Get(const std::string& job_id, v1::TrainingJob* job) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::GetTrainingRequest request;
    request.set_job_id(job_id);
    return stub_->GetTraining(&context, request, job);
  }

  grpc::Status Cancel(const std::string& job_id, v1::TrainingJob* job) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::CancelTrainingRequest request;
    request.set_job_id(job_id);
    return stub_->CancelTraining(&context, request, job);
  }

  std::vector<v1::CheckpointInfo> ListCheckpoints(const std::string& model) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::ListCheckpointsRequest request;
    request.set_model(model);
    v1::ListCheckpointsResponse response;
    grpc::Status status = stub_->ListCheckpoints(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.checkpoints().begin(), response.checkpoints().end()};
  }

  static std::vector<int64_t> Versions(
      const std::vector<v1::CheckpointInfo>& list) {
    std::vector<int64_t> versions;
    for (const auto& c : list) versions.push_back(c.version());
    return versions;
  }

  TempDir dir_;
  std::unique_ptr<TrainerServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
};

TEST_F(TrainerServiceTest, TrainWatchPublishAndList) {
  v1::StartTrainingRequest request = SmallRequest("names", 40);
  request.set_checkpoint_every(20);
  const std::string job_id = StartOk(request);

  std::vector<v1::TrainingEvent> events;
  ASSERT_TRUE(Watch(job_id, &events).ok());
  ASSERT_FALSE(events.empty());
  int progress = 0;
  std::vector<int64_t> published;
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    if (e.has_progress()) {
      ++progress;
      EXPECT_EQ(e.progress().total_steps(), 40);
    }
    if (e.has_checkpoint_published()) {
      published.push_back(e.checkpoint_published().version());
      EXPECT_EQ(e.checkpoint_published().model(), "names");
      EXPECT_EQ(e.checkpoint_published().step(),
                e.checkpoint_published().version());
      EXPECT_TRUE(fs::is_regular_file(e.checkpoint_published().path() +
                                      "/model.safetensors"));
    }
    EXPECT_EQ(e.has_finished(), i + 1 == events.size())
        << "finished comes last";
  }
  EXPECT_GT(progress, 0);
  // The watch started after StartTraining returned; the job may have
  // published version 20 by then.
  EXPECT_THAT(published,
              ::testing::AnyOf(ElementsAre(20, 40), ElementsAre(40)));
  const v1::TrainingJob& finished = events.back().finished();
  EXPECT_EQ(finished.job_id(), job_id);
  EXPECT_EQ(finished.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(finished.latest_version(), 40);
  EXPECT_EQ(finished.progress().step(), 40);
  EXPECT_TRUE(finished.error().empty());

  const auto checkpoints = ListCheckpoints("names");
  EXPECT_THAT(Versions(checkpoints), ElementsAre(20, 40));
  EXPECT_EQ(checkpoints.back().step(), 40);
  EXPECT_GT(checkpoints.back().loss(), 0);
  EXPECT_THAT(Versions(ListCheckpoints("")), ElementsAre(20, 40));
  EXPECT_THAT(ListCheckpoints("other"), IsEmpty());
  EXPECT_THAT(VersionsOnDisk(dir_.Sub("ckpt"), "names"), ElementsAre(20, 40));

  v1::TrainingJob job;
  ASSERT_TRUE(Get(job_id, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.request().steps(), 40);

  // A watcher that joins after the end gets the latest progress, then finished.
  std::vector<v1::TrainingEvent> late;
  ASSERT_TRUE(Watch(job_id, &late).ok());
  ASSERT_EQ(late.size(), 2u);
  EXPECT_EQ(late[0].progress().step(), 40);
  EXPECT_EQ(late[1].finished().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(TrainerServiceTest, DatasetFileUnderTheDataRoot) {
  v1::StartTrainingRequest request = SmallRequest("file", 5);
  request.set_dataset_path("names.txt");
  const std::string job_id = StartOk(request);
  EXPECT_EQ(WaitForEnd(job_id).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(VersionsOnDisk(dir_.Sub("ckpt"), "file"), ElementsAre(5));

  request.set_dataset_path("missing.txt");
  EXPECT_THAT(Start(request, nullptr),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, "missing.txt"));
}

TEST_F(TrainerServiceTest, DatasetPathsMayNotLeaveTheDataRoot) {
  fs::create_symlink(dir_.Sub("secret.txt"), dir_.Sub("data/link.txt"));
  for (const char* path :
       {"../secret.txt", "/etc/passwd", "link.txt", "sub/../../secret.txt"}) {
    v1::StartTrainingRequest request = SmallRequest("escape", 5);
    request.set_dataset_path(path);
    EXPECT_THAT(
        Start(request, nullptr),
        GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, "dataset_path"))
        << path;
  }
  EXPECT_FALSE(fs::exists(dir_.Sub("ckpt/escape")));
}

TEST_F(TrainerServiceTest, InvalidRequestsNameTheField) {
  struct Case {
    void (*mutate)(v1::StartTrainingRequest&);
    const char* field;
  };
  const Case cases[] = {
      {[](auto& r) { r.set_model("../evil"); }, "model"},
      {[](auto& r) { r.set_model(""); }, "model"},
      {[](auto& r) { r.mutable_config()->set_n_head(3); }, "n_head"},
      {[](auto& r) { r.set_steps(-1); }, "steps"},
      {[](auto& r) { r.set_batch_size(-1); }, "batch_size"},
      {[](auto& r) { r.set_learning_rate(-1); }, "learning_rate"},
      {[](auto& r) { r.set_checkpoint_every(-1); }, "checkpoint_every"},
      {[](auto& r) { r.clear_inline_dataset(); }, "dataset"},
  };
  for (const Case& c : cases) {
    v1::StartTrainingRequest request = SmallRequest("m", 5);
    c.mutate(request);
    EXPECT_THAT(Start(request, nullptr),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, c.field))
        << c.field;
  }
  grpc::ClientContext context;
  v1::ListTrainingsResponse jobs;
  ASSERT_TRUE(stub_->ListTrainings(&context, {}, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 0);
}

TEST_F(TrainerServiceTest, OneJobAtATime) {
  const std::string job_id = StartOk(SmallRequest("first", kForever));
  std::string second_id;
  EXPECT_THAT(Start(SmallRequest("second", 5), &second_id),
              GrpcStatusIs(grpc::StatusCode::FAILED_PRECONDITION, job_id));

  v1::TrainingJob cancelled;
  ASSERT_TRUE(Cancel(job_id, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED);
  // Once it has ended, the next job may start.
  const std::string next = StartOk(SmallRequest("second", 5));
  EXPECT_EQ(WaitForEnd(next).state(), v1::JOB_STATE_SUCCEEDED);

  grpc::ClientContext context;
  v1::ListTrainingsResponse jobs;
  ASSERT_TRUE(stub_->ListTrainings(&context, {}, &jobs).ok());
  ASSERT_EQ(jobs.jobs_size(), 2);
  EXPECT_EQ(jobs.jobs(0).job_id(), next);  // newest first
  EXPECT_EQ(jobs.jobs(1).job_id(), job_id);
}

TEST_F(TrainerServiceTest, UnknownJobIsNotFound) {
  v1::TrainingJob job;
  EXPECT_THAT(Get("no-such-job", &job),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, "no-such-job"));
  EXPECT_THAT(Cancel("no-such-job", &job),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, "no-such-job"));
  std::vector<v1::TrainingEvent> events;
  EXPECT_THAT(Watch("no-such-job", &events),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, "no-such-job"));
  EXPECT_THAT(events, IsEmpty());
  EXPECT_THAT(Get("", &job),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, "job_id"));
}

TEST_F(TrainerServiceTest, CancelStopsTheJobAndPublishesNothing) {
  v1::StartTrainingRequest request = SmallRequest("cancel-me", kForever);
  const std::string job_id = StartOk(request);
  WaitForSteps(job_id, 5);

  v1::TrainingJob job;
  ASSERT_TRUE(Cancel(job_id, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_GE(job.progress().step(), 5);
  EXPECT_EQ(job.latest_version(), 0);
  EXPECT_TRUE(job.error().empty());
  EXPECT_EQ(WaitForEnd(job_id).state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(ListCheckpoints("cancel-me"), IsEmpty());
  EXPECT_THAT(VersionsOnDisk(dir_.Sub("ckpt"), "cancel-me"), IsEmpty());
  // Cancelling again is harmless.
  ASSERT_TRUE(Cancel(job_id, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(TrainerServiceTest, ClientCancellingAWatchLeavesTheJobRunning) {
  const std::string job_id = StartOk(SmallRequest("keeps-going", kForever));
  WaitForSteps(job_id, 2);  // cancels its own watch
  v1::TrainingJob job;
  ASSERT_TRUE(Get(job_id, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  const int64_t step = job.progress().step();
  WaitForSteps(job_id, step + 3);
  ASSERT_TRUE(Cancel(job_id, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(TrainerServiceTest, ResumeContinuesFromTheLatestVersion) {
  v1::StartTrainingRequest first = SmallRequest("resumed", 6);
  first.set_checkpoint_every(3);
  EXPECT_EQ(WaitForEnd(StartOk(first)).state(), v1::JOB_STATE_SUCCEEDED);

  v1::StartTrainingRequest second = SmallRequest("resumed", 9);
  second.set_resume(true);
  second.set_checkpoint_every(1);
  const std::string job_id = StartOk(second);
  const v1::TrainingJob finished = WaitForEnd(job_id);
  EXPECT_EQ(finished.state(), v1::JOB_STATE_SUCCEEDED) << finished.error();
  EXPECT_EQ(finished.latest_version(), 9);
  // Steps 7, 8 and 9 were trained (and published); a run restarted from 0
  // would have tried to publish 1, 2, 3 and failed on version 3.
  const auto checkpoints = ListCheckpoints("resumed");
  EXPECT_THAT(Versions(checkpoints), ElementsAre(3, 6, 7, 8, 9));
  for (const auto& c : checkpoints) EXPECT_EQ(c.step(), c.version());
}

TEST_F(TrainerServiceTest, ResumeWithoutAVersionIsNotFound) {
  v1::StartTrainingRequest request = SmallRequest("never-trained", 5);
  request.set_resume(true);
  EXPECT_THAT(Start(request, nullptr),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, "never-trained"));
  // The failed start left no job behind and does not block the next one.
  EXPECT_EQ(WaitForEnd(StartOk(SmallRequest("other", 2))).state(),
            v1::JOB_STATE_SUCCEEDED);
}

TEST_F(TrainerServiceTest, PublishIntoAnUnusableRootFailsTheJob) {
  StopServer();
  // Running as root, permissions would not stop the write: a file in place of
  // the root directory does.
  WriteFile(dir_.Sub("root-file"), "not a directory");
  StartServer(dir_.Sub("root-file"));
  const std::string job_id = StartOk(SmallRequest("doomed", 5));
  const v1::TrainingJob finished = WaitForEnd(job_id);
  EXPECT_EQ(finished.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(finished.error(), HasSubstr("publishing version 5"));
  v1::TrainingJob job;
  ASSERT_TRUE(Get(job_id, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(job.error(), HasSubstr("doomed"));
  EXPECT_EQ(job.latest_version(), 0);
}

TEST_F(TrainerServiceTest, ShutdownCancelsTheRunningJob) {
  const std::string job_id = StartOk(SmallRequest("interrupted", kForever));
  WaitForSteps(job_id, 2);
  // A watcher open during shutdown receives the final event.
  grpc::ClientContext context;
  SetDeadline(context);
  v1::WatchTrainingRequest request;
  request.set_job_id(job_id);
  auto reader = stub_->WatchTraining(&context, request);
  v1::TrainingEvent event;
  ASSERT_TRUE(reader->Read(&event));  // the latest progress
  service_->Shutdown();
  v1::TrainingEvent last;
  while (reader->Read(&event)) last = event;
  EXPECT_TRUE(reader->Finish().ok());
  ASSERT_TRUE(last.has_finished());
  EXPECT_EQ(last.finished().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(VersionsOnDisk(dir_.Sub("ckpt"), "interrupted"), IsEmpty());
  EXPECT_THAT(Start(SmallRequest("too-late", 5), nullptr),
              GrpcStatusIs(grpc::StatusCode::UNAVAILABLE, "shutting down"));
}

}  // namespace
}  // namespace microgpt
