// End to end over the real binaries: a generator in follow mode
// (--trainer, --cache_dir; no shared checkpoint root) downloads what the
// trainer publishes, serves Generate on it, keeps serving while the trainer is
// killed, and picks up a newer version once a trainer is back on the same port.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microgpt/client.h"
#include "tests/e2e/child_process.h"
#include "tests/e2e/wait_for_version.h"
#include "tests/e2e/words_job.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;

// The trainer's bearer token, which the following generator presents too.
constexpr char kToken[] = "follow-e2e-token";

// A port that was free a moment ago: bound to 0, read back, closed.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return 0;
  }
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

class FollowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("e2e-follow-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->random_seed());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    fs::create_directories(dir_ / "checkpoints");
    WriteWordsDataset(dir_ / "data" / "words.txt");
    std::ofstream(dir_ / "token") << kToken << "\n";
    trainer_port_ = FreePort();
    ASSERT_GT(trainer_port_, 0);
    trainer_address_ = absl::StrCat("127.0.0.1:", trainer_port_);
  }

  void TearDown() override {
    trainer_.reset();
    generator_.reset();
    fs::remove_all(dir_);
  }

  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }

  void StartTrainer(const std::string& log) {
    trainer_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            MICROGPT_TRAINER_BIN, "serve", "--host", "127.0.0.1", "--port",
            std::to_string(trainer_port_), "--checkpoint_root",
            Path("checkpoints"), "--data_root", Path("data"),
            "--auth_token_file", Path("token")},
        Path(log));
    ASSERT_EQ(trainer_->WaitForPort(), trainer_port_)
        << "trainer did not start; see " << Path(log);
    ClientOptions options;
    options.auth_token = kToken;
    trainer_client_ =
        std::make_unique<TrainerClient>(trainer_address_, options);
  }

  void Train(int64_t steps, bool resume) {
    const WordsJob job = TrainWords(*trainer_client_, steps, resume);
    ASSERT_TRUE(job.status.ok()) << job.status;
  }

  // Waits until the generator serves `version` of "words".
  bool WaitForVersion(int64_t version) {
    return microgpt::WaitForVersion(*generator_client_, "words", version,
                                    absl::Seconds(30));
  }

  // Generates a few samples; returns the version that served them (0 on
  // failure).
  int64_t GenerateVersion() {
    v1::GenerateRequest request;
    request.set_prompt("k");
    request.set_seed(7);
    request.set_num_samples(2);
    int64_t version = 0;
    std::set<int> finished;
    const absl::Status status = generator_client_->Generate(
        request, [&](const v1::GenerateResponse& token) {
          if (token.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
            finished.insert(token.sample_index());
            version = token.version();
          }
          return true;
        });
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(finished, (std::set<int>{0, 1}));
    return version;
  }

  fs::path dir_;
  int trainer_port_ = 0;
  std::string trainer_address_;
  std::unique_ptr<ChildProcess> trainer_, generator_;
  std::unique_ptr<TrainerClient> trainer_client_;
  std::unique_ptr<GeneratorClient> generator_client_;
};

TEST_F(FollowTest, GeneratorFollowsTheTrainerAcrossARestart) {
  ASSERT_NO_FATAL_FAILURE(StartTrainer("trainer.log"));
  generator_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{
          MICROGPT_GENERATOR_BIN, "--host", "127.0.0.1", "--port", "0",
          "--trainer", trainer_address_, "--auth_token_file", Path("token"),
          "--cache_dir", Path("cache"), "--max_connection_age", "2s",
          "--poll_interval", "0.05s", "--shutdown_grace", "5s"},
      Path("generator.log"));
  const int generator_port = generator_->WaitForPort();
  ASSERT_GT(generator_port, 0) << "generator did not start";
  generator_client_ = std::make_unique<GeneratorClient>(
      absl::StrCat("127.0.0.1:", generator_port));

  // Nothing published yet: no model to serve.
  EXPECT_FALSE(
      generator_client_->Generate({}, [](const auto&) { return true; }).ok());

  ASSERT_NO_FATAL_FAILURE(Train(100, /*resume=*/false));
  ASSERT_TRUE(WaitForVersion(100)) << "see generator.log";
  EXPECT_TRUE(fs::exists(dir_ / "cache" / "words" / "100" / "manifest.json"));
  EXPECT_EQ(GenerateVersion(), 100);

  // The trainer dies: the generator keeps serving what it has (also across
  // its own --max_connection_age of 2 s).
  trainer_->Signal(SIGKILL);
  trainer_->Wait(absl::Seconds(10));
  trainer_.reset();
  absl::SleepFor(absl::Seconds(3));
  EXPECT_EQ(GenerateVersion(), 100);

  // A trainer back on the same port, with a newer version: picked up.
  ASSERT_NO_FATAL_FAILURE(StartTrainer("trainer2.log"));
  ASSERT_NO_FATAL_FAILURE(Train(200, /*resume=*/true));
  ASSERT_TRUE(WaitForVersion(200)) << "see generator.log";
  EXPECT_EQ(GenerateVersion(), 200);
  EXPECT_TRUE(fs::exists(dir_ / "cache" / "words" / "200"));
  for (const auto& entry : fs::directory_iterator(dir_ / "cache" / "words")) {
    EXPECT_NE(entry.path().filename().string().rfind(".tmp-", 0), 0u)
        << entry.path();
  }

  generator_->Signal(SIGTERM);
  EXPECT_EQ(generator_->Wait(absl::Seconds(20)), 0);
}

}  // namespace
}  // namespace microgpt
