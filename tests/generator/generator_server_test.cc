// The generator process: health before and after the first model, start-up
// errors, and the drain on shutdown.
#include "generator/generator_server.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/generator/test_util.h"

namespace microgpt {
namespace {

using ::microgpt::testing::GenerateAll;
using ::microgpt::testing::HealthCheck;
using ::microgpt::testing::MakeCheckpoint;
using ::microgpt::testing::Publish;
using ::microgpt::testing::SampleMessages;
using ::microgpt::testing::SmallConfig;
using ::microgpt::testing::SteerBos;
using ::microgpt::testing::StreamResult;
using ::microgpt::testing::TempDir;
using ::microgpt::testing::WaitFor;
using ::microgpt::testing::WaitForQuiescence;
using ::testing::HasSubstr;

constexpr int kServing = 1;
constexpr int kNotServing = 2;
constexpr char kService[] = "microgpt.v1.Generator";

GeneratorServerOptions Options(const std::string& root) {
  GeneratorServerOptions options;
  options.server.host = "127.0.0.1";
  options.server.port = 0;
  options.checkpoint_root = root;
  options.poll_interval = absl::ZeroDuration();
  return options;
}

std::shared_ptr<grpc::Channel> Connect(int port) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureChannelCredentials());
}

TEST(GeneratorServerTest, HealthIsNotServingUntilAModelLoads) {
  TempDir root;
  auto server = GeneratorServer::Create(Options(root.path()));
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Start().ok());
  auto channel = Connect((*server)->port());
  EXPECT_EQ(HealthCheck(channel, ""), kNotServing);
  EXPECT_EQ(HealthCheck(channel, kService), kNotServing);
  auto stub = v1::Generator::NewStub(channel);
  EXPECT_EQ(GenerateAll(stub.get(), v1::GenerateRequest()).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);

  Publish(root.path(), "names", 1, MakeCheckpoint(SmallConfig(), 1));
  ASSERT_TRUE((*server)->models().PollOnce().ok());
  EXPECT_EQ(HealthCheck(channel, ""), kServing);
  EXPECT_EQ(HealthCheck(channel, kService), kServing);
  EXPECT_TRUE(GenerateAll(stub.get(), v1::GenerateRequest()).status.ok());

  (*server)->RequestShutdown();
  (*server)->WaitForShutdown();
}

TEST(GeneratorServerTest, PollThreadTurnsHealthServing) {
  TempDir root;
  GeneratorServerOptions options = Options(root.path());
  options.poll_interval = absl::Milliseconds(10);
  auto server = GeneratorServer::Create(options);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->Start().ok());
  auto channel = Connect((*server)->port());
  EXPECT_EQ(HealthCheck(channel, kService), kNotServing);
  Publish(root.path(), "names", 1, MakeCheckpoint(SmallConfig(), 1));
  EXPECT_TRUE(
      WaitFor([&] { return HealthCheck(channel, kService) == kServing; }));
  (*server)->RequestShutdown();
  (*server)->WaitForShutdown();
}

TEST(GeneratorServerTest, ModelsPresentAtStartAreServedAtOnce) {
  TempDir root;
  Publish(root.path(), "names", 1, MakeCheckpoint(SmallConfig(), 1));
  auto server = GeneratorServer::Create(Options(root.path()));
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->models().PollOnce().ok());
  ASSERT_TRUE((*server)->Start().ok());
  EXPECT_EQ(HealthCheck(Connect((*server)->port()), ""), kServing);
}

TEST(GeneratorServerTest, RootMustBeADirectory) {
  TempDir root;
  auto missing = GeneratorServer::Create(Options(root.path() + "/missing"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("checkpoint_root"));
  const std::string file = root.path() + "/file";
  std::ofstream(file) << "x";
  EXPECT_EQ(GeneratorServer::Create(Options(file)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GeneratorServer::Create(Options("")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GeneratorServerTest, ShutdownLetsStreamsInFlightFinish) {
  TempDir root;
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(1024), 2);
  SteerBos(checkpoint, -10.0f);
  Publish(root.path(), "long", 1, checkpoint);
  GeneratorServerOptions options = Options(root.path());
  options.server.shutdown_grace = absl::Seconds(20);
  auto server = GeneratorServer::Create(options);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->models().PollOnce().ok());
  ASSERT_TRUE((*server)->Start().ok());
  auto channel = Connect((*server)->port());
  auto stub = v1::Generator::NewStub(channel);

  grpc::ClientContext context;
  v1::GenerateRequest request;
  request.set_num_samples(4);
  auto reader = stub->Generate(&context, request);
  std::vector<v1::GenerateResponse> messages(1);
  ASSERT_TRUE(reader->Read(messages.data()));

  std::thread shutdown([&] {
    (*server)->RequestShutdown();
    (*server)->WaitForShutdown();
  });
  // While the stream drains, new calls are refused.
  v1::GenerateRequest short_request;
  short_request.set_max_tokens(1);
  StreamResult refused;
  EXPECT_TRUE(WaitFor([&] {
    refused = GenerateAll(stub.get(), short_request);
    return !refused.status.ok();
  }));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("shutting down"));
  EXPECT_EQ(HealthCheck(channel, ""), kNotServing);

  v1::GenerateResponse response;
  while (reader->Read(&response)) messages.push_back(response);
  EXPECT_TRUE(reader->Finish().ok());
  shutdown.join();
  ASSERT_EQ(messages.size(), 4u * 1024u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(SampleMessages(messages, i).back().finish_reason(),
              v1::FINISH_REASON_BLOCK_SIZE);
  }
  // The server is gone: new calls fail.
  StreamResult after = GenerateAll(stub.get(), request, absl::Seconds(2));
  EXPECT_FALSE(after.status.ok());
}

TEST(GeneratorServerTest, StreamsStillRunningAtTheEndOfGraceEndCancelled) {
  TempDir root;
  // n_embd 64: 64 samples of 2048 tokens take several seconds even on an
  // idle machine (a 16-wide model now finishes them in about 2 s).
  ModelCheckpoint checkpoint =
      MakeCheckpoint(SmallConfig(/*block_size=*/2048, /*n_embd=*/64), 2);
  SteerBos(checkpoint, -10.0f);
  Publish(root.path(), "long", 1, checkpoint);
  GeneratorServerOptions options = Options(root.path());
  options.server.shutdown_grace = absl::Seconds(3);
  auto server = GeneratorServer::Create(options);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->models().PollOnce().ok());
  ASSERT_TRUE((*server)->Start().ok());
  auto stub = v1::Generator::NewStub(Connect((*server)->port()));

  grpc::ClientContext context;
  v1::GenerateRequest request;
  request.set_num_samples(64);
  auto reader = stub->Generate(&context, request);
  std::vector<v1::GenerateResponse> messages(1);
  ASSERT_TRUE(reader->Read(messages.data()));
  const absl::Time start = absl::Now();
  std::thread shutdown([&] {
    (*server)->RequestShutdown();
    (*server)->WaitForShutdown();
  });
  // Generating 64 * 2048 tokens takes several seconds, longer than the
  // grace period; the samples are ended 0.6 s before it runs out.
  v1::GenerateResponse response;
  while (reader->Read(&response)) messages.push_back(response);
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_code() << " "
                           << status.error_message();
  shutdown.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  int cancelled = 0;
  for (int i = 0; i < 64; ++i) {
    std::vector<v1::GenerateResponse> sample = SampleMessages(messages, i);
    ASSERT_FALSE(sample.empty());
    const v1::GenerateResponse& last = sample.back();
    if (last.finish_reason() == v1::FINISH_REASON_CANCELLED) {
      ++cancelled;
      EXPECT_EQ(last.id(), -1);
      EXPECT_EQ(last.model(), "long");
      EXPECT_EQ(last.version(), 1);
    }
  }
  EXPECT_EQ(cancelled, 64);
}

TEST(GeneratorServerTest, ClientsThatStopReadingAreCancelledWithinGrace) {
  TempDir root;
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(2048), 2);
  SteerBos(checkpoint, -10.0f);
  Publish(root.path(), "long", 1, checkpoint);
  GeneratorServerOptions options = Options(root.path());
  options.server.shutdown_grace = absl::Seconds(1);
  auto server = GeneratorServer::Create(options);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->models().PollOnce().ok());
  ASSERT_TRUE((*server)->Start().ok());
  auto stub = v1::Generator::NewStub(Connect((*server)->port()));

  grpc::ClientContext context;
  v1::GenerateRequest request;
  request.set_num_samples(16);
  request.set_top_logprobs(27);  // enough to fill gRPC's buffers
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));  // and no more
  // Every buffer on the way is full: the stream cannot finish by itself.
  WaitForQuiescence(
      [&] { return (*server)->scheduler().stats().tokens_generated; });
  ASSERT_GT((*server)->scheduler().stats().active, 0);

  const absl::Time start = absl::Now();
  (*server)->RequestShutdown();
  (*server)->WaitForShutdown();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ((*server)->scheduler().stats().active, 0);
  while (reader->Read(&response)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
}

}  // namespace
}  // namespace microgpt
