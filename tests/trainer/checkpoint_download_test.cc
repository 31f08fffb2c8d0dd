// Trainer.DownloadCheckpoint's back-pressure over a real gRPC server on
// 127.0.0.1: a client that stops reading a large file stops the server's
// reads of it (it reads a chunk ahead of what gRPC sends, never the whole
// file), and the download still completes once the client reads again. How
// far the server has read is the file's offset in /proc/self/fdinfo.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checkpoint_dir.h"
#include "common/checkpoint_store.h"
#include "gtest/gtest.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "tests/trainer/trainer_test_util.h"
#include "trainer/trainer_service.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;
using ::microgpt::testing::TempDir;
using ::microgpt::testing::WriteFile;

constexpr int64_t kFileBytes = 64 << 20;

// How far this process has read `path` through its open descriptor; -1 when
// it has none open.
int64_t ReadOffset(const std::string& path) {
  for (const auto& fd : fs::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    if (fs::read_symlink(fd.path(), error) != path) continue;
    std::ifstream info("/proc/self/fdinfo/" + fd.path().filename().string());
    std::string key;
    int64_t pos = -1;
    while (info >> key) {
      if (key == "pos:" && info >> pos) return pos;
    }
  }
  return -1;
}

TEST(CheckpointDownloadTest, AClientThatStopsReadingStopsTheReads) {
  TempDir dir;
  const std::string root = dir.Sub("ckpt");
  // A version of one large file, in the published layout.
  const std::string version_dir = CheckpointStore(root).VersionPath("big", 1);
  fs::create_directories(version_dir);
  const std::string big = version_dir + "/big.bin";
  const std::string bytes(kFileBytes, 'x');
  WriteFile(big, bytes);
  absl::StatusOr<Manifest> manifest = MakeManifest(1, {{"big.bin", bytes}});
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  WriteFile(version_dir + "/" + std::string(kManifestFile),
            SerializeManifest(*manifest));

  TrainerServiceOptions options;
  options.checkpoint_root = root;
  TrainerServiceImpl service(options);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = v1::Trainer::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  v1::DownloadCheckpointRequest request;
  request.set_model("big");
  request.set_version(1);
  auto reader = stub->DownloadCheckpoint(&context, request);
  v1::CheckpointChunk chunk;
  int64_t received = 0;
  while (reader->Read(&chunk) && chunk.file() != "big.bin") {
  }
  received += static_cast<int64_t>(chunk.data().size());

  // Not reading: gRPC's flow-control windows fill up, then the reads stop.
  int64_t offset = -2;
  for (int i = 0; i < 50 && ReadOffset(big) != offset; ++i) {
    offset = ReadOffset(big);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(ReadOffset(big), offset) << "still reading";
  EXPECT_GT(offset, 0);
  EXPECT_LT(offset, kFileBytes / 2) << "read ahead of the client";

  while (reader->Read(&chunk)) {
    received += static_cast<int64_t>(chunk.data().size());
  }
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(received, kFileBytes);
  server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace microgpt
