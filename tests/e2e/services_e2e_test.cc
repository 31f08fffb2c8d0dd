// End to end over the real binaries on ephemeral loopback ports: the trainer
// trains and publishes through the Trainer API, the generator picks the new
// version up from the shared checkpoint root and streams tokens, a newer
// version is swapped in while a stream on the old one completes, the CLI
// prints what a user sees, and SIGTERM drains both servers to exit status 0.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/checkpoint_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microgpt/client.h"
#include "tests/e2e/child_process.h"
#include "tests/e2e/wait_for_version.h"
#include "tests/e2e/words_job.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// The trainer's bearer token (it refuses to serve without one).
constexpr char kToken[] = "services-e2e-token";

class ServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat(
               "e2e-", getpid(), "-",
               ::testing::UnitTest::GetInstance()->random_seed(), "-",
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    fs::create_directories(dir_ / "checkpoints");
    WriteWordsDataset(dir_ / "data" / "words.txt");
    std::ofstream(dir_ / "token") << kToken << "\n";

    trainer_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            MICROGPT_TRAINER_BIN, "serve", "--host", "127.0.0.1", "--port", "0",
            "--checkpoint_root", Path("checkpoints"), "--data_root",
            Path("data"), "--auth_token_file", Path("token")},
        Path("trainer.log"));
    generator_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{MICROGPT_GENERATOR_BIN, "--host", "127.0.0.1",
                                 "--port", "0", "--checkpoint_root",
                                 Path("checkpoints"), "--poll_interval",
                                 "0.05s", "--shutdown_grace", "5s"},
        Path("generator.log"));
    const int trainer_port = trainer_->WaitForPort();
    const int generator_port = generator_->WaitForPort();
    ASSERT_GT(trainer_port, 0) << "trainer did not start; see trainer.log";
    ASSERT_GT(generator_port, 0) << "generator did not start";
    trainer_address_ = absl::StrCat("127.0.0.1:", trainer_port);
    generator_address_ = absl::StrCat("127.0.0.1:", generator_port);
    ClientOptions trainer_options;
    trainer_options.auth_token = kToken;
    trainer_client_ =
        std::make_unique<TrainerClient>(trainer_address_, trainer_options);
    generator_client_ = std::make_unique<GeneratorClient>(generator_address_);
  }

  void TearDown() override {
    trainer_.reset();
    generator_.reset();
    fs::remove_all(dir_);
  }

  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }

  // Trains through the Trainer API and returns the events seen while watching.
  std::vector<v1::TrainingEvent> Train(int64_t steps, bool resume) {
    WordsJob job = TrainWords(*trainer_client_, steps, resume);
    EXPECT_TRUE(job.status.ok()) << job.status;
    return job.events;
  }

  // Waits until the generator serves `version` of "words".
  bool WaitForVersion(int64_t version) {
    return microgpt::WaitForVersion(*generator_client_, "words", version,
                                    absl::Seconds(20));
  }

  fs::path dir_;
  std::unique_ptr<ChildProcess> trainer_, generator_;
  std::string trainer_address_, generator_address_;
  std::unique_ptr<TrainerClient> trainer_client_;
  std::unique_ptr<GeneratorClient> generator_client_;
};

TEST_F(ServicesTest, TrainWatchPublishServeGenerate) {
  const std::vector<v1::TrainingEvent> events = Train(200, /*resume=*/false);
  int progress = 0;
  std::vector<int64_t> published;
  ASSERT_FALSE(events.empty());
  for (const v1::TrainingEvent& e : events) {
    // A watcher that joins before the first step first gets the job's
    // step-0 progress, which has no loss or rate yet.
    if (e.has_progress() && e.progress().step() > 0) {
      ++progress;
      EXPECT_GT(e.progress().loss(), 0);
      EXPECT_GT(e.progress().tokens_per_second(), 0);
    }
    if (e.has_checkpoint_published()) {
      published.push_back(e.checkpoint_published().version());
    }
  }
  EXPECT_GT(progress, 0);
  EXPECT_EQ(published, (std::vector<int64_t>{100, 200}));
  ASSERT_TRUE(events.back().has_finished());
  EXPECT_EQ(events.back().finished().state(), v1::JOB_STATE_SUCCEEDED);

  ASSERT_TRUE(WaitForVersion(200));
  v1::GenerateRequest request;
  request.set_prompt("k");
  request.set_seed(7);
  request.set_num_samples(3);
  std::vector<v1::GenerateResponse> tokens;
  ASSERT_TRUE(generator_client_
                  ->Generate(request,
                             [&](const v1::GenerateResponse& t) {
                               tokens.push_back(t);
                               return true;
                             })
                  .ok());
  std::set<int> finished;
  for (const v1::GenerateResponse& t : tokens) {
    if (t.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      finished.insert(t.sample_index());
      EXPECT_EQ(t.model(), "words");
      EXPECT_EQ(t.version(), 200);
    }
  }
  EXPECT_EQ(finished, (std::set<int>{0, 1, 2}));
}

TEST_F(ServicesTest, NewVersionSwapsInWhileOldStreamCompletes) {
  Train(100, /*resume=*/false);
  ASSERT_TRUE(WaitForVersion(100));

  // A stream opened on version 100: read its first token, then let a second
  // training run publish version 200 before reading the rest.
  v1::GenerateRequest request;
  request.set_seed(1);
  request.set_num_samples(16);
  request.set_temperature(1.0f);
  std::vector<v1::GenerateResponse> old_tokens;
  bool swapped = false;
  const absl::Status status =
      generator_client_->Generate(request, [&](const v1::GenerateResponse& t) {
        old_tokens.push_back(t);
        if (!swapped) {
          const std::vector<v1::TrainingEvent> events = Train(200, true);
          EXPECT_TRUE(!events.empty() && events.back().has_finished() &&
                      events.back().finished().state() ==
                          v1::JOB_STATE_SUCCEEDED);
          swapped = WaitForVersion(200);
        }
        return true;
      });
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(swapped);
  int finals = 0;
  for (const v1::GenerateResponse& t : old_tokens) {
    if (t.finish_reason() == v1::FINISH_REASON_UNSPECIFIED) continue;
    ++finals;
    EXPECT_EQ(t.version(), 100) << "a stream must finish on its version";
  }
  EXPECT_EQ(finals, 16);

  // New streams get the new version.
  request.set_num_samples(1);
  int64_t new_version = 0;
  ASSERT_TRUE(generator_client_
                  ->Generate(request,
                             [&](const v1::GenerateResponse& t) {
                               if (t.version() != 0) new_version = t.version();
                               return true;
                             })
                  .ok());
  EXPECT_EQ(new_version, 200);
}

TEST_F(ServicesTest, CliGeneratesAndListsModels) {
  Train(100, /*resume=*/false);
  ASSERT_TRUE(WaitForVersion(100));
  ChildProcess generate(
      {MICROGPT_CLI_BIN, "generate", "--generator", generator_address_,
       "--prompt", "ka", "--seed", "3", "--temperature", "0"},
      Path("cli.log"));
  ASSERT_EQ(generate.Wait(absl::Seconds(20)), 0);
  const std::string text = generate.output();
  EXPECT_EQ(text.rfind("ka", 0), 0u) << text;  // the prompt, then the tokens
  EXPECT_GT(text.size(), 3u);

  ChildProcess models(
      {MICROGPT_CLI_BIN, "models", "--generator", generator_address_},
      Path("cli.log"));
  ASSERT_EQ(models.Wait(absl::Seconds(20)), 0);
  EXPECT_THAT(models.output(), HasSubstr("words"));
  EXPECT_THAT(models.output(), HasSubstr("100"));

  ChildProcess bad({MICROGPT_CLI_BIN, "generate", "--generator",
                    generator_address_, "--top_p", "1.5"},
                   Path("cli.log"));
  EXPECT_EQ(bad.Wait(absl::Seconds(20)), 1);

  // Several samples print in index order, whichever finishes first (they
  // finish by length), and --top_logprobs shows what it asked for.
  ChildProcess several(
      {MICROGPT_CLI_BIN, "generate", "--generator", generator_address_,
       "--seed", "5", "--num_samples", "12", "--top_logprobs", "2"},
      Path("cli.log"));
  ASSERT_EQ(several.Wait(absl::Seconds(20)), 0);
  std::vector<int> order;
  for (absl::string_view line : absl::StrSplit(several.output(), '\n')) {
    int index;
    if (absl::ConsumePrefix(&line, "[") &&
        absl::SimpleAtoi(line.substr(0, line.find(']')), &index)) {
      order.push_back(index);
    }
  }
  std::vector<int> expected(12);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(order, expected) << several.output();
  EXPECT_THAT(several.output(), HasSubstr("   top: "));  // logprob lines
}

// The CLI names the cause: a dataset file that is not UTF-8 is refused before
// anything is sent (which line, which byte), a string flag that is not UTF-8
// names its field, and a server that does not serve the service asked for
// is named as such (gRPC's bare UNIMPLEMENTED said none of this).
TEST_F(ServicesTest, CliNamesTheCauseOfBadFilesAndWrongAddresses) {
  std::ofstream(dir_ / "latin1.txt") << "anna\nb\xe9la\n";
  std::ofstream(dir_ / "binary.dat") << std::string("\x00\xff\xfe\x80", 4);
  const auto run = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), MICROGPT_CLI_BIN);
    ChildProcess cli(argv, Path("cli.log"));
    const int code = cli.Wait(absl::Seconds(20)).value_or(-1);
    std::ifstream log(Path("cli.log"));
    return std::make_pair(code,
                          std::string(std::istreambuf_iterator<char>(log), {}));
  };
  const std::string token_file = Path("token");
  for (const auto& [file, where] :
       {std::pair<std::string, std::string>{"latin1.txt", "line 2"},
        {"binary.dat", "line 1"}}) {
    const auto [code, log] =
        run({"train", "--trainer", trainer_address_, "--auth_token_file",
             token_file, "--model", "m", "--data_file", Path(file)});
    EXPECT_EQ(code, 1);
    EXPECT_THAT(log, HasSubstr(absl::StrCat(
                         "error: INVALID_ARGUMENT: --data_file ", Path(file),
                         ": ", where, " is not valid UTF-8 (byte ")));
    EXPECT_THAT(log, Not(HasSubstr("libprotobuf")));
  }
  absl::StatusOr<std::vector<v1::TrainingJob>> jobs = trainer_client_->List();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_TRUE(jobs->empty()) << "a refused file started a job";

  const auto [prompt_code, prompt_log] =
      run({"generate", "--generator", generator_address_, "--prompt", "k\xe9"});
  EXPECT_EQ(prompt_code, 1);
  EXPECT_THAT(prompt_log,
              HasSubstr("error: INVALID_ARGUMENT: microgpt.v1.GenerateRequest."
                        "prompt is not valid UTF-8 (byte 2)"));

  const auto [jobs_code, jobs_log] =
      run({"jobs", "--trainer", generator_address_});
  EXPECT_EQ(jobs_code, 1);
  EXPECT_THAT(jobs_log,
              HasSubstr(absl::StrCat(
                  "error: UNIMPLEMENTED: ", generator_address_,
                  " does not serve microgpt.v1.Trainer/ListTrainings: is it a "
                  "microgpt trainer?")));
  const auto [models_code, models_log] =
      run({"models", "--generator", trainer_address_, "--auth_token_file",
           token_file});
  EXPECT_EQ(models_code, 1);
  EXPECT_THAT(models_log,
              HasSubstr(absl::StrCat(
                  "error: UNIMPLEMENTED: ", trainer_address_,
                  " does not serve microgpt.v1.Generator/ListModels: is it a "
                  "microgpt generator?")));
}

// The README's sequence: `microgpt train` returns, and `microgpt generate`
// right after it is served, from a generator whose fallback poll is a minute
// away (it loads on the publish's change notification).
TEST_F(ServicesTest, GenerateRightAfterTrainIsServed) {
  ChildProcess generator(
      {MICROGPT_GENERATOR_BIN, "--host", "127.0.0.1", "--port", "0",
       "--checkpoint_root", Path("checkpoints"), "--poll_interval", "60s"},
      Path("slow-poll-generator.log"));
  const int port = generator.WaitForPort();
  ASSERT_GT(port, 0);
  ChildProcess train({MICROGPT_CLI_BIN, "train", "--trainer", trainer_address_,
                      "--auth_token_file", Path("token"), "--model", "fresh",
                      "--data", "words.txt", "--steps", "20"},
                     Path("cli.log"));
  ASSERT_EQ(train.Wait(absl::Seconds(60)), 0);
  ChildProcess generate(
      {MICROGPT_CLI_BIN, "generate", "--generator",
       absl::StrCat("127.0.0.1:", port), "--model", "fresh", "--seed", "1"},
      Path("cli-generate.log"));
  EXPECT_EQ(generate.Wait(absl::Seconds(20)), 0)
      << std::ifstream(Path("cli-generate.log")).rdbuf();
  EXPECT_FALSE(generate.output().empty());
}

// Ctrl-C on `microgpt train` leaves the job to the trainer and says so.
TEST_F(ServicesTest, CtrlCOnTrainSaysTheJobContinues) {
  ChildProcess cli({MICROGPT_CLI_BIN, "train", "--trainer", trainer_address_,
                    "--auth_token_file", Path("token"), "--model", "long",
                    "--data", "words.txt", "--steps", "100000000"},
                   Path("cli.log"));
  std::string job_id;
  for (int i = 0; i < 200 && job_id.empty(); ++i) {
    absl::StatusOr<std::vector<v1::TrainingJob>> jobs = trainer_client_->List();
    if (jobs.ok() && !jobs->empty()) job_id = jobs->front().job_id();
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_FALSE(job_id.empty()) << "the job did not start";
  absl::SleepFor(absl::Milliseconds(300));  // into the watch
  cli.Signal(SIGINT);
  EXPECT_EQ(cli.Wait(absl::Seconds(20)), 130);
  std::ifstream log(Path("cli.log"));
  const std::string stderr_text(std::istreambuf_iterator<char>(log), {});
  EXPECT_THAT(stderr_text,
              HasSubstr(absl::StrCat("interrupted: job ", job_id,
                                     " keeps running on the trainer; follow "
                                     "it with `microgpt watch ",
                                     job_id, "`")));
  absl::StatusOr<v1::TrainingJob> job = trainer_client_->Get(job_id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(trainer_client_->Cancel(job_id).ok());
}

TEST_F(ServicesTest, SigtermDuringTrainingPublishesTheStepReachedAndExitsZero) {
  v1::StartTrainingRequest request;
  request.set_model("words");
  request.set_dataset_path("words.txt");
  request.set_steps(2000000);  // far more than can run before the signal
  request.set_checkpoint_every(50000);
  request.mutable_config()->set_n_embd(64);
  ASSERT_TRUE(trainer_client_->Start(request).ok());
  absl::SleepFor(absl::Milliseconds(300));
  trainer_->Signal(SIGTERM);
  generator_->Signal(SIGTERM);
  EXPECT_EQ(trainer_->Wait(absl::Seconds(20)), 0);
  EXPECT_EQ(generator_->Wait(absl::Seconds(20)), 0);

  // The step reached is published, complete, and it loads; a restarted
  // trainer resumes from it. Nothing partial is visible.
  CheckpointStore store(Path("checkpoints"));
  absl::StatusOr<std::vector<int64_t>> versions = store.ListVersions("words");
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_GT(versions->front(), 0);
  EXPECT_LT(versions->front(), 50000) << "the signal came before step 50000";
  EXPECT_TRUE(store.LoadModel("words", versions->front()).ok());
  for (const auto& entry : fs::directory_iterator(Path("checkpoints"))) {
    if (!fs::is_directory(entry.path())) continue;
    for (const auto& version : fs::directory_iterator(entry.path())) {
      EXPECT_NE(version.path().filename().string().rfind(".tmp", 0), 0u)
          << "leftover " << version.path();
    }
  }
}

}  // namespace
}  // namespace microgpt
