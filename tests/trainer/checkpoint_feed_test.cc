// Trainer.WatchCheckpoints and Trainer.DownloadCheckpoint over a real gRPC
// server on 127.0.0.1: versions already in the root, then new ones written by
// a separate CheckpointStore; every byte of a download against the files.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checkpoint_store.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "tests/generator/test_util.h"
#include "trainer/trainer_service.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;
using ::microgpt::testing::MakeCheckpoint;
using ::microgpt::testing::Publish;
using ::microgpt::testing::SmallConfig;
using ::microgpt::testing::TempDir;

constexpr size_t kChunkBytes = 1000;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

class CheckpointFeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() + "/ckpt";
    fs::create_directories(root_);
    fs::create_directories(dir_.path() + "/data");
  }

  void TearDown() override {
    if (service_) service_->Shutdown();
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  void StartServer() {
    TrainerServiceOptions options;
    options.checkpoint_root = root_;
    options.data_root = dir_.path() + "/data";
    options.checkpoint_feed.poll_interval = absl::Milliseconds(50);
    options.checkpoint_feed.chunk_bytes = kChunkBytes;
    service_ = std::make_unique<TrainerServiceImpl>(options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Trainer::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                            grpc::InsecureChannelCredentials()));
  }

  TempDir dir_;
  std::string root_;
  std::unique_ptr<TrainerServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
};

TEST_F(CheckpointFeedTest, WatchSendsExistingVersionsThenNewOnes) {
  Publish(root_, "names", 20, MakeCheckpoint(SmallConfig(), 2, 20, 2.5));
  Publish(root_, "names", 10, MakeCheckpoint(SmallConfig(), 1, 10, 2.75));
  Publish(root_, "other", 5, MakeCheckpoint(SmallConfig(), 3, 5));
  StartServer();

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::WatchCheckpointsRequest request;
  request.set_model("names");
  auto reader = stub_->WatchCheckpoints(&context, request);
  v1::CheckpointEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.checkpoint().model(), "names");
  EXPECT_EQ(event.checkpoint().version(), 10);
  EXPECT_EQ(event.checkpoint().step(), 10);
  EXPECT_DOUBLE_EQ(event.checkpoint().loss(), 2.75);
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.checkpoint().version(), 20);

  // Another process publishing into the same root: seen by the rescan. A
  // version of another model is not sent to this watcher.
  Publish(root_, "other", 6, MakeCheckpoint(SmallConfig(), 4, 6));
  Publish(root_, "names", 30, MakeCheckpoint(SmallConfig(), 5, 30));
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.checkpoint().model(), "names");
  EXPECT_EQ(event.checkpoint().version(), 30);
  EXPECT_EQ(event.checkpoint().path(),
            CheckpointStore(root_).VersionPath("names", 30));

  // Shutdown ends the stream with UNAVAILABLE rather than waiting for the
  // server's grace period.
  service_->Shutdown();
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(CheckpointFeedTest, WatchEveryModelAndRejectsBadNames) {
  Publish(root_, "b", 1, MakeCheckpoint(SmallConfig(), 1, 1));
  Publish(root_, "a", 2, MakeCheckpoint(SmallConfig(), 2, 2));
  StartServer();
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    auto reader = stub_->WatchCheckpoints(&context, {});
    v1::CheckpointEvent event;
    ASSERT_TRUE(reader->Read(&event));
    EXPECT_EQ(event.checkpoint().model(), "a");
    ASSERT_TRUE(reader->Read(&event));
    EXPECT_EQ(event.checkpoint().model(), "b");
    context.TryCancel();
    while (reader->Read(&event)) {
    }
    reader->Finish();
  }
  grpc::ClientContext context;
  v1::WatchCheckpointsRequest request;
  request.set_model("../etc");
  auto reader = stub_->WatchCheckpoints(&context, request);
  v1::CheckpointEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

struct Downloaded {
  grpc::Status status;
  std::vector<std::string> order;  // file names in the order received
  std::map<std::string, std::string> bytes;
  std::map<std::string, std::string> sha256;
  std::map<std::string, int64_t> size;
  size_t max_chunk = 0;
  bool offsets_ok = true;
};

Downloaded Download(v1::Trainer::Stub* stub, const std::string& model,
                    int64_t version) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::DownloadCheckpointRequest request;
  request.set_model(model);
  request.set_version(version);
  auto reader = stub->DownloadCheckpoint(&context, request);
  Downloaded result;
  v1::CheckpointChunk chunk;
  while (reader->Read(&chunk)) {
    if (result.order.empty() || result.order.back() != chunk.file()) {
      result.order.push_back(chunk.file());
    }
    std::string& bytes = result.bytes[chunk.file()];
    if (static_cast<int64_t>(bytes.size()) != chunk.offset()) {
      result.offsets_ok = false;
    }
    bytes += chunk.data();
    result.sha256[chunk.file()] = chunk.sha256();
    result.size[chunk.file()] = chunk.file_size();
    result.max_chunk = std::max(result.max_chunk, chunk.data().size());
  }
  result.status = reader->Finish();
  return result;
}

TEST_F(CheckpointFeedTest, DownloadStreamsEveryFileWithItsDigest) {
  Publish(root_, "names", 7, MakeCheckpoint(SmallConfig(), 1, 7));
  StartServer();
  const Downloaded got = Download(stub_.get(), "names", 7);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  EXPECT_TRUE(got.offsets_ok);
  EXPECT_LE(got.max_chunk, kChunkBytes);
  ASSERT_FALSE(got.order.empty());
  EXPECT_EQ(got.order.front(), "manifest.json");

  const std::string dir = CheckpointStore(root_).VersionPath("names", 7);
  std::vector<std::string> on_disk;
  for (const auto& entry : fs::directory_iterator(dir)) {
    on_disk.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(got.order, ::testing::UnorderedElementsAreArray(on_disk));
  EXPECT_EQ(got.order.size(), got.bytes.size()) << "a file was split up";
  for (const auto& [name, bytes] : got.bytes) {
    const std::string expected = ReadAll(dir + "/" + name);
    EXPECT_EQ(bytes, expected) << name;
    EXPECT_EQ(got.size.at(name), static_cast<int64_t>(expected.size()));
    EXPECT_EQ(got.sha256.at(name), *Sha256Hex(expected)) << name;
  }
  EXPECT_GT(got.bytes.at("model.safetensors").size(), kChunkBytes)
      << "the test should cover several chunks";
}

TEST_F(CheckpointFeedTest, DownloadErrors) {
  Publish(root_, "names", 7, MakeCheckpoint(SmallConfig(), 1, 7));
  StartServer();
  EXPECT_EQ(Download(stub_.get(), "../names", 7).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Download(stub_.get(), "", 7).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Download(stub_.get(), "names", 0).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Download(stub_.get(), "names", 8).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Download(stub_.get(), "nobody", 7).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace microgpt
