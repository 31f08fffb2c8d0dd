// The generator's follow mode against an in-process fake Trainer that serves
// WatchCheckpoints and DownloadCheckpoint from a checkpoint root: verified,
// atomic downloads into the cache, a corrupt download rejected, and a
// GeneratorServer that picks versions up, keeps serving while the trainer is
// away and reconnects when it is back on the same port.
#include "generator/checkpoint_follower.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checkpoint_store.h"
#include "common/sha256.h"
#include "generator/generator_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/flock_holder.h"
#include "tests/generator/test_util.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;
using ::microgpt::testing::CorruptVersion;
using ::microgpt::testing::FlockHolder;
using ::microgpt::testing::MakeCheckpoint;
using ::microgpt::testing::Publish;
using ::microgpt::testing::SmallConfig;
using ::microgpt::testing::TempDir;
using ::microgpt::testing::WaitFor;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// Serves a root the way the trainer does, in one chunk per file, with the
// manifest's size and SHA-256 (so a file corrupted on disk is sent with a
// digest it does not match).
class FakeTrainer final : public v1::Trainer::Service {
 public:
  explicit FakeTrainer(std::string root) : root_(std::move(root)) {}

  grpc::Status WatchCheckpoints(
      grpc::ServerContext* context, const v1::WatchCheckpointsRequest*,
      grpc::ServerWriter<v1::CheckpointEvent>* writer) override {
    CheckpointStore store(root_);
    std::set<std::pair<std::string, int64_t>> sent;
    while (!context->IsCancelled() && !stopping_.load()) {
      auto models = store.ListModels();
      for (const std::string& model :
           models.ok() ? *models : std::vector<std::string>{}) {
        auto versions = store.ListVersions(model);
        if (!versions.ok()) continue;
        for (int64_t version : *versions) {
          if (!sent.insert({model, version}).second) continue;
          v1::CheckpointEvent event;
          event.mutable_checkpoint()->set_model(model);
          event.mutable_checkpoint()->set_version(version);
          if (!writer->Write(event)) return grpc::Status::CANCELLED;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stopping");
  }

  grpc::Status DownloadCheckpoint(
      grpc::ServerContext*, const v1::DownloadCheckpointRequest* request,
      grpc::ServerWriter<v1::CheckpointChunk>* writer) override {
    const std::string dir = CheckpointStore(root_).VersionPath(
        request->model(), request->version());
    if (!fs::is_directory(dir)) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such version");
    }
    const std::string manifest_text = ReadAll(dir + "/manifest.json");
    Send(writer, "manifest.json", manifest_text,
         static_cast<int64_t>(manifest_text.size()), *Sha256Hex(manifest_text));
    const nlohmann::json manifest = nlohmann::json::parse(manifest_text);
    for (auto it = manifest["files"].begin(); it != manifest["files"].end();
         ++it) {
      Send(writer, it.key(), ReadAll(dir + "/" + it.key()),
           it.value()["size"].get<int64_t>(),
           it.value()["sha256"].get<std::string>());
    }
    return grpc::Status::OK;
  }

  void Stop() { stopping_ = true; }

 private:
  static void Send(grpc::ServerWriter<v1::CheckpointChunk>* writer,
                   const std::string& name, const std::string& bytes,
                   int64_t size, const std::string& sha256) {
    v1::CheckpointChunk chunk;
    chunk.set_file(name);
    chunk.set_offset(0);
    chunk.set_data(bytes);
    chunk.set_file_size(size);
    chunk.set_sha256(sha256);
    writer->Write(chunk);
  }

  const std::string root_;
  std::atomic<bool> stopping_{false};
};

// A FakeTrainer behind a gRPC server on 127.0.0.1:port (0 picks one).
class FakeTrainerServer {
 public:
  FakeTrainerServer(const std::string& root, int port) : service_(root) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port),
                             grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~FakeTrainerServer() {
    service_.Stop();
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }
  int port() const { return server_ ? port_ : 0; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  FakeTrainer service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class CheckpointFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() + "/trainer";
    cache_ = dir_.path() + "/cache";
    fs::create_directories(root_);
  }

  TempDir dir_;
  std::string root_, cache_;
};

TEST_F(CheckpointFollowerTest, DownloadsAVersionVerifiedIntoTheCache) {
  Publish(root_, "names", 7, MakeCheckpoint(SmallConfig(), 1, 7));
  FakeTrainerServer trainer(root_, 0);
  ASSERT_GT(trainer.port(), 0);
  auto stub = v1::Trainer::NewStub(grpc::CreateChannel(
      trainer.address(), grpc::InsecureChannelCredentials()));

  ASSERT_TRUE(
      DownloadVersion(stub.get(), cache_, "names", 7, absl::Seconds(20)).ok());
  EXPECT_THAT(Entries(cache_ + "/names"), ::testing::ElementsAre("7"));
  for (const std::string& file : Entries(root_ + "/names/7")) {
    EXPECT_EQ(ReadAll(cache_ + "/names/7/" + file),
              ReadAll(root_ + "/names/7/" + file))
        << file;
  }
  EXPECT_TRUE(CheckpointStore(cache_).LoadModel("names", 7).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(
      DownloadVersion(stub.get(), cache_, "names", 7, absl::Seconds(20))));
  EXPECT_TRUE(absl::IsNotFound(
      DownloadVersion(stub.get(), cache_, "names", 8, absl::Seconds(20))));
  EXPECT_THAT(Entries(cache_ + "/names"), ::testing::ElementsAre("7"));
}

TEST_F(CheckpointFollowerTest, CorruptDownloadIsRejectedAndLeavesNothing) {
  Publish(root_, "names", 7, MakeCheckpoint(SmallConfig(), 1, 7));
  CorruptVersion(root_, "names", 7);
  FakeTrainerServer trainer(root_, 0);
  auto stub = v1::Trainer::NewStub(grpc::CreateChannel(
      trainer.address(), grpc::InsecureChannelCredentials()));

  const absl::Status status =
      DownloadVersion(stub.get(), cache_, "names", 7, absl::Seconds(20));
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_THAT(status.message(), ::testing::HasSubstr("SHA-256"));
  EXPECT_THAT(Entries(cache_ + "/names"), ::testing::IsEmpty())
      << "neither the version nor its temporary directory may stay";
}

TEST_F(CheckpointFollowerTest, StartRemovesOnlyTemporariesNobodyHolds) {
  // Two generators share the cache: one died mid-download, the other is
  // still downloading (and holds its temporary directory locked).
  const std::string orphan = cache_ + "/names/.tmp-7-4242-0011223344556677";
  const std::string live = cache_ + "/names/.tmp-8-4343-8899aabbccddeeff";
  ASSERT_TRUE(fs::create_directories(orphan + "/nested"));
  std::ofstream(orphan + "/model.safetensors") << "partial";
  ASSERT_TRUE(fs::create_directories(live));
  std::ofstream(live + "/model.safetensors") << "arriving";
  FlockHolder other_generator(live);
  ASSERT_TRUE(other_generator.locked());

  CheckpointFollowerOptions options;
  options.trainer_address = "127.0.0.1:1";  // nobody: it just retries
  options.cache_dir = cache_;
  CheckpointFollower follower(options);
  ASSERT_TRUE(follower.Start().ok());
  follower.Stop();
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_TRUE(fs::exists(live + "/model.safetensors"))
      << "a download another process is writing was removed";
}

TEST_F(CheckpointFollowerTest, ServerFollowsTrainerAcrossRestarts) {
  auto trainer = std::make_unique<FakeTrainerServer>(root_, 0);
  const int trainer_port = trainer->port();
  ASSERT_GT(trainer_port, 0);

  GeneratorServerOptions options;
  options.server.host = "127.0.0.1";
  options.trainer_address = trainer->address();
  options.cache_dir = cache_;
  options.poll_interval = absl::Seconds(60);  // the follower drives loads
  options.follower.max_backoff = absl::Milliseconds(200);
  auto server = GeneratorServer::Create(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Start().ok());
  ModelManager& models = (*server)->models();
  EXPECT_EQ(models.num_loaded_versions(), 0);

  // A version the trainer publishes is downloaded and loaded.
  Publish(root_, "names", 100, MakeCheckpoint(SmallConfig(), 1, 100));
  ASSERT_TRUE(WaitFor([&] { return models.Get("names", 100).ok(); }));

  // A corrupt version is rejected and never reaches the cache; the good one
  // keeps serving.
  // (Corrupted elsewhere and renamed in, so the watch never sees it intact.)
  const std::string staging = dir_.path() + "/staging";
  Publish(staging, "names", 150, MakeCheckpoint(SmallConfig(), 4, 150));
  CorruptVersion(staging, "names", 150);
  fs::rename(staging + "/names/150", root_ + "/names/150");
  absl::SleepFor(absl::Milliseconds(300));

  // The trainer goes away: the loaded version keeps serving.
  trainer.reset();
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_TRUE(models.Get("names", 0).ok());
  EXPECT_FALSE(fs::exists(cache_ + "/names/150"));

  // Back on the same port with a newer version: the follower reconnects.
  Publish(root_, "names", 200, MakeCheckpoint(SmallConfig(), 2, 200));
  trainer = std::make_unique<FakeTrainerServer>(root_, trainer_port);
  ASSERT_EQ(trainer->port(), trainer_port) << "could not rebind the port";
  ASSERT_TRUE(WaitFor([&] { return models.Get("names", 200).ok(); },
                      absl::Seconds(20)));
  auto newest = models.Get("names", 0);
  ASSERT_TRUE(newest.ok());
  EXPECT_EQ((*newest)->version, 200);
  EXPECT_FALSE(fs::exists(cache_ + "/names/150"));
  for (const std::string& name : Entries(cache_ + "/names")) {
    EXPECT_FALSE(absl::StartsWith(name, ".tmp-")) << name;
  }
  (*server)->RequestShutdown();
  (*server)->WaitForShutdown();
}

TEST_F(CheckpointFollowerTest, TheCacheKeepsTheVersionsTheGeneratorKeeps) {
  // An older version already in the cache, from an earlier run.
  Publish(cache_, "names", 50, MakeCheckpoint(SmallConfig(), 5, 50));
  auto trainer = std::make_unique<FakeTrainerServer>(root_, 0);
  ASSERT_GT(trainer->port(), 0);
  GeneratorServerOptions options;
  options.server.host = "127.0.0.1";
  options.trainer_address = trainer->address();
  options.cache_dir = cache_;
  options.versions_to_keep = 2;
  options.poll_interval = absl::Seconds(60);
  auto server = GeneratorServer::Create(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Start().ok());
  ModelManager& models = (*server)->models();
  for (int64_t version : {100, 200, 300}) {
    Publish(root_, "names", version, MakeCheckpoint(SmallConfig(), 1, version));
    ASSERT_TRUE(WaitFor([&] { return models.Get("names", version).ok(); }))
        << version;
  }
  // Only the two newest stay on disk, as in memory: 50 and 100 were removed
  // as newer versions arrived.
  ASSERT_TRUE(WaitFor([&] {
    return Entries(cache_ + "/names") == std::vector<std::string>{"200", "300"};
  })) << absl::StrJoin(Entries(cache_ + "/names"), " ");
  EXPECT_TRUE(models.Get("names", 200).ok());
  EXPECT_FALSE(models.Get("names", 100).ok());
  (*server)->RequestShutdown();
  (*server)->WaitForShutdown();
}

TEST(GeneratorServerFollowOptions, ExactlyOneSourceOfCheckpoints) {
  TempDir dir;
  GeneratorServerOptions both;
  both.checkpoint_root = dir.path();
  both.trainer_address = "127.0.0.1:1";
  both.cache_dir = dir.path() + "/cache";
  EXPECT_TRUE(absl::IsInvalidArgument(GeneratorServer::Create(both).status()));
  GeneratorServerOptions no_cache;
  no_cache.trainer_address = "127.0.0.1:1";
  EXPECT_TRUE(
      absl::IsInvalidArgument(GeneratorServer::Create(no_cache).status()));
}

}  // namespace
}  // namespace microgpt
