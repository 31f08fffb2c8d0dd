// Start-up checks and transport limits of the real binaries: the trainer
// refuses to serve without a bearer token unless --insecure_no_auth says so,
// refuses a checkpoint root that is not a directory, answers calls without
// the token UNAUTHENTICATED; both servers refuse a request larger than
// --max_message_bytes with RESOURCE_EXHAUSTED and go on serving; the
// generator applies --max_tokens_limit.
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/checkpoint.h"
#include "common/checkpoint_store.h"
#include "common/model.h"
#include "common/parameters.h"
#include "common/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microgpt/client.h"
#include "tests/e2e/child_process.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kToken[] = "startup-e2e-token";

class StartupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The binaries would take a token from the environment.
    unsetenv("MICROGPT_AUTH_TOKEN");
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat(
               "e2e-startup-", getpid(), "-",
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "checkpoints");
    std::ofstream(dir_ / "token") << kToken << "\n";
  }

  void TearDown() override {
    process_.reset();
    fs::remove_all(dir_);
  }

  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }

  std::string Log() const {
    std::ifstream in(Path("server.log"));
    std::stringstream contents;
    contents << in.rdbuf();
    return contents.str();
  }

  // Starts `microgpt-trainer serve` with `flags`; its port, 0 if it exited.
  int StartTrainer(const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {MICROGPT_TRAINER_BIN, "serve",
                                     "--host=127.0.0.1", "--port=0"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    process_ = std::make_unique<ChildProcess>(argv, Path("server.log"));
    return process_->WaitForPort();
  }

  fs::path dir_;
  std::unique_ptr<ChildProcess> process_;
};

TEST_F(StartupTest, TrainerRefusesToServeWithoutABearerToken) {
  EXPECT_EQ(StartTrainer({"--checkpoint_root=" + Path("checkpoints")}), 0);
  EXPECT_EQ(process_->Wait(absl::Seconds(20)), 1);
  EXPECT_THAT(Log(), HasSubstr("requires a bearer token"));
  EXPECT_THAT(Log(), HasSubstr("--insecure_no_auth"));
}

TEST_F(StartupTest, TrainerWithInsecureNoAuthServesWithoutAToken) {
  const int port = StartTrainer(
      {"--checkpoint_root=" + Path("checkpoints"), "--insecure_no_auth"});
  ASSERT_GT(port, 0) << Log();
  TrainerClient client(absl::StrCat("127.0.0.1:", port));
  EXPECT_TRUE(client.List().ok());
  EXPECT_THAT(Log(), HasSubstr("open to anyone"));
}

TEST_F(StartupTest, TrainerRefusesInsecureNoAuthWithAToken) {
  EXPECT_EQ(StartTrainer({"--checkpoint_root=" + Path("checkpoints"),
                          "--insecure_no_auth",
                          "--auth_token_file=" + Path("token")}),
            0);
  EXPECT_EQ(process_->Wait(absl::Seconds(20)), 1);
  EXPECT_THAT(Log(), HasSubstr("contradicts"));
}

TEST_F(StartupTest, TrainerCallsWithoutTheTokenAreUnauthenticated) {
  const int port = StartTrainer({"--checkpoint_root=" + Path("checkpoints"),
                                 "--auth_token_file=" + Path("token")});
  ASSERT_GT(port, 0) << Log();
  const std::string address = absl::StrCat("127.0.0.1:", port);
  EXPECT_EQ(TrainerClient(address).List().status().code(),
            absl::StatusCode::kUnauthenticated);
  ClientOptions wrong;
  wrong.auth_token = "not-the-token";
  EXPECT_EQ(TrainerClient(address, wrong).List().status().code(),
            absl::StatusCode::kUnauthenticated);
  ClientOptions right;
  right.auth_token = kToken;
  EXPECT_TRUE(TrainerClient(address, right).List().ok());
}

TEST_F(StartupTest, TrainerCheckpointRootThatIsAFileIsAStartupError) {
  std::ofstream(Path("root-file")) << "not a directory\n";
  EXPECT_EQ(StartTrainer({"--checkpoint_root=" + Path("root-file"),
                          "--auth_token_file=" + Path("token")}),
            0);
  EXPECT_EQ(process_->Wait(absl::Seconds(20)), 1);
  EXPECT_THAT(Log(), HasSubstr("is not a usable directory"));
}

TEST_F(StartupTest, TrainerRefusesAnOversizedRequestAndServesTheNext) {
  const int port = StartTrainer({"--checkpoint_root=" + Path("checkpoints"),
                                 "--auth_token_file=" + Path("token"),
                                 "--max_message_bytes=1048576"});
  ASSERT_GT(port, 0) << Log();
  ClientOptions options;
  options.auth_token = kToken;
  TrainerClient client(absl::StrCat("127.0.0.1:", port), options);
  v1::StartTrainingRequest request;
  request.set_model("big");
  for (int i = 0; i < 2048; ++i) {
    request.mutable_inline_dataset()->add_documents(std::string(1024, 'a'));
  }
  const absl::StatusOr<std::string> refused = client.Start(request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted)
      << refused.status();
  // The next request, on the same channel, is served.
  request.mutable_inline_dataset()->clear_documents();
  request.mutable_inline_dataset()->add_documents("emma");
  request.mutable_inline_dataset()->add_documents("ava");
  request.set_steps(3);
  const absl::StatusOr<std::string> job = client.Start(request);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(
      client.Watch(*job, [](const v1::TrainingEvent&) { return true; }).ok());
  EXPECT_EQ(client.Get(*job)->state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(StartupTest, TrainCommandAppliesTheLimitFlags) {
  std::ofstream(Path("words.txt")) << "emma\nava\nmia\n";
  const std::vector<std::string> train = {MICROGPT_TRAINER_BIN,
                                          "train",
                                          "--data",
                                          Path("words.txt"),
                                          "--model",
                                          "words",
                                          "--steps",
                                          "2",
                                          "--checkpoint_root",
                                          Path("checkpoints")};
  std::vector<std::string> argv = train;
  // The default model on this 5-letter vocabulary needs 85312 bytes.
  argv.push_back("--max_training_bytes=80000");
  ChildProcess refused(argv, Path("server.log"));
  EXPECT_EQ(refused.Wait(absl::Seconds(30)), 1);
  EXPECT_THAT(Log(), HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_THAT(Log(), HasSubstr("limit of 80000 bytes"));
  argv = train;
  argv.push_back("--max_dataset_bytes=10");  // the file has 13
  ChildProcess too_large(argv, Path("server.log"));
  EXPECT_EQ(too_large.Wait(absl::Seconds(30)), 1);
  EXPECT_THAT(Log(), HasSubstr("larger than the limit of 10 bytes"));
  EXPECT_FALSE(fs::exists(dir_ / "checkpoints" / "words"));
  ChildProcess fits(train, Path("server.log"));
  EXPECT_EQ(fits.Wait(absl::Seconds(30)), 0) << Log();
  EXPECT_TRUE(fs::exists(dir_ / "checkpoints" / "words" / "2"));
}

TEST_F(StartupTest, GeneratorRefusesAnOversizedRequestAndServesTheNext) {
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{MICROGPT_GENERATOR_BIN, "--host=127.0.0.1",
                               "--port=0",
                               "--checkpoint_root=" + Path("checkpoints"),
                               "--max_message_bytes=65536"},
      Path("server.log"));
  const int port = process_->WaitForPort();
  ASSERT_GT(port, 0) << Log();
  GeneratorClient client(absl::StrCat("127.0.0.1:", port));
  v1::GenerateRequest request;
  request.set_prompt(std::string(100'000, 'a'));
  const absl::Status refused = client.Generate(
      request, [](const v1::GenerateResponse&) { return true; });
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  // Served: no model is loaded yet, which a small request learns.
  request.set_prompt("a");
  EXPECT_EQ(
      client.Generate(request, [](const v1::GenerateResponse&) { return true; })
          .code(),
      absl::StatusCode::kUnavailable);
  EXPECT_TRUE(client.ListModels().ok());
}

// --max_tokens_limit: not a number or below 1 stops the generator at start;
// a limit is the bound of max_tokens that requests are refused beyond.
TEST_F(StartupTest, GeneratorAppliesMaxTokensLimit) {
  for (const auto& [flag, message] :
       std::vector<std::pair<std::string, std::string>>{
           {"--max_tokens_limit=0", "max_tokens_limit must be >= 1, got 0"},
           {"--max_tokens_limit=many", "max_tokens_limit"}}) {
    ChildProcess refused(
        {MICROGPT_GENERATOR_BIN, "--host=127.0.0.1", "--port=0",
         "--checkpoint_root=" + Path("checkpoints"), flag},
        Path("server.log"));
    EXPECT_EQ(refused.Wait(absl::Seconds(20)), 1) << flag;
    EXPECT_THAT(Log(), HasSubstr(message)) << flag;
  }
  ModelConfig config;
  config.block_size = 16;
  const Tokenizer tokenizer = Tokenizer::FromDocuments({"abc"});
  config.vocab_size = tokenizer.vocab_size();
  const ModelCheckpoint checkpoint{
      config,      tokenizer, Model::Initialize(config, 1).parameters(),
      1,           3.0,       DatasetFormat::kDocuments,
      std::nullopt};
  ASSERT_TRUE(CheckpointStore(Path("checkpoints"))
                  .Publish("m", 1, checkpoint, nullptr, ParameterLayout(config))
                  .ok());
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{
          MICROGPT_GENERATOR_BIN, "--host=127.0.0.1", "--port=0",
          "--checkpoint_root=" + Path("checkpoints"), "--max_tokens_limit=8"},
      Path("server.log"));
  const int port = process_->WaitForPort();
  ASSERT_GT(port, 0) << Log();
  GeneratorClient client(absl::StrCat("127.0.0.1:", port));
  v1::GenerateRequest request;
  request.set_max_tokens(9);
  absl::Status status;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {  // until the first scan has loaded the model
    status = client.Generate(request,
                             [](const v1::GenerateResponse&) { return true; });
  } while (status.code() == absl::StatusCode::kUnavailable &&
           absl::Now() < deadline);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("max_tokens must be in [0, 8]"));
  request.set_max_tokens(8);
  EXPECT_TRUE(
      client.Generate(request, [](const v1::GenerateResponse&) { return true; })
          .ok());
}

}  // namespace
}  // namespace microgpt
