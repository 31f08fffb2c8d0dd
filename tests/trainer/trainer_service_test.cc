// The Trainer service end to end: a real gRPC server on 127.0.0.1 (port
// picked by the system), the generated stub as client, temporary directories.
#include "trainer/trainer_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "tests/trainer/trainer_test_util.h"
#include "trainer/job_options.h"

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

  void StartServer(const std::string& checkpoint_root,
                   const TrainingLimits& limits = TrainingLimits()) {
    TrainerServiceOptions options;
    options.checkpoint_root = checkpoint_root;
    options.data_root = dir_.Sub("data");
    options.limits = limits;
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

TEST_F(TrainerServiceTest, MalformedJobIdsAreInvalidArgument) {
  const std::string job_id = StartOk(SmallRequest("m", 5));
  WaitForEnd(job_id);
  for (const std::string& bad :
       {std::string(""), std::string("../job-1"), std::string("job 1"),
        std::string("job-1\n"), std::string(kMaxJobIdLength + 1, 'a')}) {
    SCOPED_TRACE(bad);
    v1::TrainingJob job;
    EXPECT_THAT(Get(bad, &job),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, "job_id"));
    EXPECT_THAT(Cancel(bad, &job),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, "job_id"));
    std::vector<v1::TrainingEvent> events;
    EXPECT_THAT(Watch(bad, &events),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, "job_id"));
    EXPECT_THAT(events, IsEmpty());
  }
  // A well-formed id of no job is NOT_FOUND; the real one is still there.
  v1::TrainingJob job;
  EXPECT_THAT(Get(std::string(kMaxJobIdLength, 'a'), &job),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, "job_id"));
  EXPECT_TRUE(Get(job_id, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(TrainerServiceTest, ListCheckpointsRejectsUnsafeModelNames) {
  for (const std::string& bad :
       {std::string("../ckpt"), std::string("a/b"), std::string("/etc"),
        std::string(".hidden"), std::string(65, 'm')}) {
    SCOPED_TRACE(bad);
    grpc::ClientContext context;
    SetDeadline(context);
    v1::ListCheckpointsRequest request;
    request.set_model(bad);
    v1::ListCheckpointsResponse response;
    EXPECT_THAT(stub_->ListCheckpoints(&context, request, &response),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, "model"));
    EXPECT_EQ(response.checkpoints_size(), 0);
  }
  EXPECT_THAT(ListCheckpoints("m"), IsEmpty());  // still served
}

TEST_F(TrainerServiceTest, DatasetsBeyondTheLimitsAreInvalidArgument) {
  StopServer();
  TrainingLimits limits;
  limits.max_dataset_bytes = 100;
  limits.max_documents = 20;
  limits.max_document_bytes = 12;
  StartServer(dir_.Sub("ckpt"), limits);
  WriteFile(dir_.Sub("data/big.txt"), std::string(101, 'a'));
  WriteFile(dir_.Sub("data/long_line.txt"), "emma\nabcdefghijklm\nava\n");
  std::string many;
  for (int i = 0; i < 21; ++i) many += "ab\n";
  WriteFile(dir_.Sub("data/many.txt"), many);
  struct Case {
    const char* name;
    std::function<void(v1::StartTrainingRequest&)> mutate;
    std::vector<std::string> message_parts;
  };
  const std::vector<Case> cases = {
      {"file above max_dataset_bytes",
       [](auto& r) { r.set_dataset_path("big.txt"); },
       {"big.txt", "larger than the limit of 100 bytes"}},
      {"file with a document above max_document_bytes",
       [](auto& r) { r.set_dataset_path("long_line.txt"); },
       {"dataset_path", "document 1", "13 bytes", "limit of 12"}},
      {"file with more than max_documents",
       [](auto& r) { r.set_dataset_path("many.txt"); },
       {"dataset_path", "21 documents", "limit of 20"}},
      {"inline documents above max_dataset_bytes",
       [](auto& r) {
         r.mutable_inline_dataset()->clear_documents();
         for (int i = 0; i < 11; ++i) {
           r.mutable_inline_dataset()->add_documents("abcdefghij");
         }
       },
       {"inline_dataset", "110 bytes", "limit of 100"}},
      {"inline document above max_document_bytes",
       [](auto& r) {
         r.mutable_inline_dataset()->add_documents("abcdefghijklm");
       },
       {"inline_dataset", "13 bytes", "limit of 12"}},
      {"more inline documents than max_documents",
       [](auto& r) {
         for (int i = 0; i < 7; ++i)
           r.mutable_inline_dataset()->add_documents("a");
       },
       {"inline_dataset", "21 documents", "limit of 20"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::StartTrainingRequest request = SmallRequest("limits", 5);
    c.mutate(request);
    const grpc::Status status = Start(request, nullptr);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << status.error_message();
    for (const std::string& part : c.message_parts) {
      EXPECT_THAT(status.error_message(), HasSubstr(part));
    }
  }
  EXPECT_FALSE(fs::exists(dir_.Sub("ckpt/limits")));
  // Within the limits (14 documents, 79 bytes), the same server trains.
  const std::string job_id = StartOk(SmallRequest("limits", 5));
  EXPECT_EQ(WaitForEnd(job_id).state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(TrainerServiceTest, ModelThatWouldNotFitIsResourceExhausted) {
  StopServer();
  TrainingLimits limits;
  limits.max_training_bytes = 64 << 20;
  StartServer(dir_.Sub("ckpt"), limits);
  // 8 layers of 12 * 512^2 parameters: 25M floats, 400 MB with their
  // gradients and Adam's moments.
  v1::StartTrainingRequest big = SmallRequest("big", 5);
  big.mutable_config()->set_n_embd(512);
  big.mutable_config()->set_n_head(8);
  big.mutable_config()->set_n_layer(8);
  const grpc::Status status = Start(big, nullptr);
  EXPECT_THAT(status,
              GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED, "MiB"));
  EXPECT_THAT(status.error_message(), HasSubstr("n_embd 512"));
  EXPECT_THAT(status.error_message(), HasSubstr("--max_training_bytes"));
  // A dataset file's vocabulary is known once the job has read it: 3000
  // distinct characters make the logits of a 64 x 64 batch (3 x [4096, V])
  // about 150 MB, though the request alone (vocabulary 2) fits.
  std::string wide;
  for (char32_t c = 0x4E00; c < 0x4E00 + 2999; ++c) {
    wide += static_cast<char>(0xE0 | (c >> 12));
    wide += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    wide += static_cast<char>(0x80 | (c & 0x3F));
    wide += '\n';
  }
  WriteFile(dir_.Sub("data/wide.txt"), wide);
  v1::StartTrainingRequest from_file = SmallRequest("wide", 5);
  from_file.set_dataset_path("wide.txt");
  from_file.mutable_config()->set_n_embd(16);
  from_file.mutable_config()->set_n_head(4);
  from_file.mutable_config()->set_block_size(64);
  from_file.set_batch_size(64);
  EXPECT_THAT(
      Start(from_file, nullptr),
      GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED, "vocab_size 3000"));
  // A batch too large for the budget (activations), then one that fits.
  v1::StartTrainingRequest batch = SmallRequest("batch", 5);
  batch.mutable_config()->set_block_size(256);
  batch.mutable_config()->set_n_embd(64);
  batch.set_batch_size(1024);
  EXPECT_THAT(
      Start(batch, nullptr),
      GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED, "batch_size 1024"));
  for (const char* model : {"big", "wide", "batch"}) {
    EXPECT_FALSE(fs::exists(dir_.Sub("ckpt") + "/" + model)) << model;
  }
  batch.set_batch_size(2);
  batch.set_steps(2);
  EXPECT_EQ(WaitForEnd(StartOk(batch)).state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(TrainerServiceTest, ResumeWithABatchBeyondTheBudgetIsResourceExhausted) {
  EXPECT_EQ(WaitForEnd(StartOk(SmallRequest("grow", 2))).state(),
            v1::JOB_STATE_SUCCEEDED);
  StopServer();
  TrainingLimits limits;
  limits.max_training_bytes = 16 << 20;
  StartServer(dir_.Sub("ckpt"), limits);
  // The version's sizes (n_embd 8, block_size 8) with 4096 documents a step:
  // about 30 MB of activations.
  v1::StartTrainingRequest resume = SmallRequest("grow", 4);
  resume.set_resume(true);
  resume.set_batch_size(4096);
  EXPECT_THAT(
      Start(resume, nullptr),
      GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED, "batch_size 4096"));
  EXPECT_THAT(VersionsOnDisk(dir_.Sub("ckpt"), "grow"), ElementsAre(2));
  resume.set_batch_size(2);
  EXPECT_EQ(WaitForEnd(StartOk(resume)).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(VersionsOnDisk(dir_.Sub("ckpt"), "grow"), ElementsAre(2, 4));
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

TEST_F(TrainerServiceTest, CancelStopsTheJobAndPublishesTheStepReached) {
  v1::StartTrainingRequest request = SmallRequest("cancel-me", kForever);
  const std::string job_id = StartOk(request);
  WaitForSteps(job_id, 5);

  v1::TrainingJob job;
  ASSERT_TRUE(Cancel(job_id, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  const int64_t reached = job.progress().step();
  EXPECT_GE(reached, 5);
  EXPECT_EQ(job.latest_version(), reached);
  EXPECT_TRUE(job.error().empty());
  EXPECT_EQ(WaitForEnd(job_id).state(), v1::JOB_STATE_CANCELLED);
  const std::vector<v1::CheckpointInfo> listed = ListCheckpoints("cancel-me");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].version(), reached);
  EXPECT_THAT(VersionsOnDisk(dir_.Sub("ckpt"), "cancel-me"),
              ElementsAre(reached));
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

TEST_F(TrainerServiceTest, AnUnusableRootIsRefusedAtStart) {
  StopServer();
  // Running as root, permissions would not stop the write: a file in place of
  // the root directory does. Listing the model's versions (the lineage
  // check) fails first, so StartTraining answers, before any step.
  WriteFile(dir_.Sub("root-file"), "not a directory");
  StartServer(dir_.Sub("root-file"));
  grpc::Status status = Start(SmallRequest("doomed", 5), nullptr);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.error_message(), HasSubstr(dir_.Sub("root-file")));
  EXPECT_THAT(status.error_message(), HasSubstr("Not a directory"));
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
  // The step reached is published, for a restarted trainer to resume.
  EXPECT_THAT(VersionsOnDisk(dir_.Sub("ckpt"), "interrupted"),
              ElementsAre(last.finished().latest_version()));
  EXPECT_GE(last.finished().latest_version(), 2);
  EXPECT_THAT(Start(SmallRequest("too-late", 5), nullptr),
              GrpcStatusIs(grpc::StatusCode::UNAVAILABLE, "shutting down"));
}

}  // namespace
}  // namespace microgpt
