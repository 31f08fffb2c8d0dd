// Storage faults over the real binaries: a publish that hits a file size
// limit (as a full disk would) fails the job with a clear error over
// WatchTraining and GetTraining and leaves earlier versions intact; corrupt,
// truncated and checksum-mismatched versions appearing in the root are logged
// and skipped by a generator that keeps serving and stays healthy; and the
// trainer's retention (--keep_versions) never deletes a version a generator
// serves from the shared root.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/checkpoint_store.h"
#include "common/parameters.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microgpt/client.h"
#include "tests/e2e/child_process.h"
#include "tests/e2e/wait_for_version.h"
#include "tests/e2e/words_job.h"
#include "tests/generator/test_util.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kToken[] = "faults-e2e-token";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void WriteAll(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Polls until `path` contains `text`; false after `timeout`.
bool WaitForText(const fs::path& path, const std::string& text,
                 absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (absl::StrContains(ReadAll(path), text)) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat(
               "e2e-faults-", getpid(), "-",
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    fs::create_directories(dir_ / "checkpoints");
    WriteWordsDataset(dir_ / "data" / "words.txt");
    WriteAll(dir_ / "token", kToken);
  }

  void TearDown() override {
    trainer_.reset();
    generator_.reset();
    fs::remove_all(dir_);
  }

  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }

  // Starts `microgpt-trainer serve` (after `prefix`, e.g. a prlimit command)
  // and connects a client with the bearer token.
  void StartTrainer(const std::vector<std::string>& prefix = {},
                    const std::vector<std::string>& flags = {}) {
    std::vector<std::string> argv = prefix;
    for (const std::string& arg :
         {std::string(MICROGPT_TRAINER_BIN), std::string("serve"),
          std::string("--host=127.0.0.1"), std::string("--port=0"),
          "--checkpoint_root=" + Path("checkpoints"),
          "--data_root=" + Path("data"),
          "--auth_token_file=" + Path("token")}) {
      argv.push_back(arg);
    }
    argv.insert(argv.end(), flags.begin(), flags.end());
    trainer_ = std::make_unique<ChildProcess>(argv, Path("trainer.log"));
    const int port = trainer_->WaitForPort();
    ASSERT_GT(port, 0) << ReadAll(Path("trainer.log"));
    ClientOptions options;
    options.auth_token = kToken;
    trainer_client_ = std::make_unique<TrainerClient>(
        absl::StrCat("127.0.0.1:", port), options);
  }

  void StopTrainer() {
    trainer_->Signal(SIGTERM);
    EXPECT_EQ(trainer_->Wait(absl::Seconds(20)), 0);
    trainer_.reset();
  }

  void StartGenerator(int versions_to_keep) {
    generator_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            MICROGPT_GENERATOR_BIN, "--host", "127.0.0.1", "--port", "0",
            "--checkpoint_root", Path("checkpoints"), "--poll_interval",
            "0.05s", "--versions_to_keep", absl::StrCat(versions_to_keep)},
        Path("generator.log"));
    const int port = generator_->WaitForPort();
    ASSERT_GT(port, 0) << ReadAll(Path("generator.log"));
    generator_address_ = absl::StrCat("127.0.0.1:", port);
    generator_client_ = std::make_unique<GeneratorClient>(generator_address_);
  }

  // Trains "words" to `steps` (publishing every 100) and returns the events.
  std::vector<v1::TrainingEvent> Train(int64_t steps, bool resume,
                                       std::string* job_id = nullptr) {
    WordsJob job = TrainWords(*trainer_client_, steps, resume);
    EXPECT_TRUE(job.status.ok()) << job.status;
    if (job_id != nullptr) *job_id = job.job_id;
    return job.events;
  }

  std::vector<int64_t> VersionsOnDisk() {
    absl::StatusOr<std::vector<int64_t>> versions =
        CheckpointStore(Path("checkpoints")).ListVersions("words");
    EXPECT_TRUE(versions.ok()) << versions.status();
    return versions.ok() ? *versions : std::vector<int64_t>{};
  }

  // The generator's health: 1 SERVING, 2 NOT_SERVING.
  int Health() {
    return testing::HealthCheck(
        grpc::CreateChannel(generator_address_,
                            grpc::InsecureChannelCredentials()),
        "");
  }

  // The generator serves `version` (pinned) and reports SERVING.
  void ExpectServing(int64_t version) {
    v1::GenerateRequest request;
    request.set_model("words");
    request.set_version(version);
    request.set_seed(3);
    int64_t served = 0;
    const absl::Status status = generator_client_->Generate(
        request, [&](const v1::GenerateResponse& t) {
          if (t.version() != 0) served = t.version();
          return true;
        });
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(served, version);
    EXPECT_EQ(Health(), 1) << "the generator is not SERVING";
  }

  fs::path dir_;
  std::unique_ptr<ChildProcess> trainer_, generator_;
  std::unique_ptr<TrainerClient> trainer_client_;
  std::string generator_address_;
  std::unique_ptr<GeneratorClient> generator_client_;
};

TEST_F(FaultsTest,
       PublishPastAFileSizeLimitFailsTheJobAndKeepsEarlierVersions) {
  StartTrainer();
  // Made at start, owned by the trainer's user, for generators' leases.
  EXPECT_TRUE(fs::is_directory(dir_ / "checkpoints" / ".leases"));
  ASSERT_EQ(Train(200, /*resume=*/false).back().finished().state(),
            v1::JOB_STATE_SUCCEEDED);
  StopTrainer();

  // The same trainer under an 8 KiB file size limit (RLIMIT_FSIZE): writing
  // a 17 KiB model file fails with EFBIG, as it would with ENOSPC on a full
  // disk. The trainer ignores SIGXFSZ, so it is the write that fails.
  ASSERT_EQ(access("/usr/bin/prlimit", X_OK), 0) << "util-linux prlimit";
  StartTrainer({"/usr/bin/prlimit", "--fsize=8192", "--"});
  std::string job_id;
  const std::vector<v1::TrainingEvent> events =
      Train(400, /*resume=*/true, &job_id);
  ASSERT_FALSE(events.empty());
  for (const v1::TrainingEvent& e : events) {
    EXPECT_FALSE(e.has_checkpoint_published()) << e.DebugString();
  }
  const auto error_is_clear =
      AllOf(HasSubstr("publishing version 300 of \"words\""),
            HasSubstr(Path("checkpoints") + "/words/.tmp-300-"),
            HasSubstr("File too large"));
  ASSERT_TRUE(events.back().has_finished());
  const v1::TrainingJob& finished = events.back().finished();
  EXPECT_EQ(finished.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(finished.error(), error_is_clear);
  EXPECT_EQ(finished.latest_version(), 0);
  EXPECT_EQ(finished.progress().step(), 300);

  absl::StatusOr<v1::TrainingJob> job = trainer_client_->Get(job_id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(job->error(), error_is_clear);
  // The trainer logs the failure just after it sends the event.
  EXPECT_TRUE(WaitForText(Path("trainer.log"), "File too large"));
  EXPECT_THAT(ReadAll(Path("trainer.log")), error_is_clear);

  // Earlier versions intact and verified; nothing else left in the model's
  // directory; the trainer still serves its API.
  EXPECT_THAT(VersionsOnDisk(), ElementsAre(100, 200));
  const CheckpointStore store(Path("checkpoints"));
  for (int64_t v : {100, 200}) {
    absl::StatusOr<ModelCheckpoint> model = store.LoadModel("words", v);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_TRUE(
        store.LoadOptimizer("words", v, ParameterLayout(model->config)).ok());
  }
  std::vector<std::string> entries;
  for (const auto& entry : fs::directory_iterator(dir_ / "checkpoints/words")) {
    entries.push_back(entry.path().filename().string());
  }
  std::sort(entries.begin(), entries.end());
  EXPECT_THAT(entries, ElementsAre("100", "200"));
  EXPECT_TRUE(trainer_client_->List().ok());
}

TEST_F(FaultsTest, CorruptVersionsAreSkippedWhileTheGoodOneServes) {
  StartTrainer();
  ASSERT_EQ(Train(100, /*resume=*/false).back().finished().state(),
            v1::JOB_STATE_SUCCEEDED);
  StartGenerator(/*versions_to_keep=*/1);
  ASSERT_TRUE(
      WaitForVersion(*generator_client_, "words", 100, absl::Seconds(20)));
  // Health turns SERVING just after the first version is listed.
  ASSERT_TRUE(testing::WaitFor([&] { return Health() == 1; }));
  ExpectServing(100);

  // Each bad version appears the way a publisher makes one appear: written
  // into a hidden directory, then renamed into place.
  const fs::path model_dir = dir_ / "checkpoints" / "words";
  const auto appear = [&](int64_t version,
                          const std::function<void(const fs::path&)>& damage) {
    const fs::path temp = model_dir / absl::StrCat(".tmp-test-", version);
    fs::copy(model_dir / "100", temp);
    WriteAll(temp / "manifest.json",
             absl::StrReplaceAll(ReadAll(temp / "manifest.json"),
                                 {{"\"version\": 100",
                                   absl::StrCat("\"version\": ", version)}}));
    damage(temp);
    fs::rename(temp, model_dir / absl::StrCat(version));
  };
  // A flipped byte: the SHA-256 no longer matches.
  appear(200, [](const fs::path& dir) {
    std::string bytes = ReadAll(dir / "model.safetensors");
    bytes[bytes.size() / 2] ^= 0x40;
    WriteAll(dir / "model.safetensors", bytes);
  });
  // Truncated to half its size.
  appear(300, [](const fs::path& dir) {
    std::string bytes = ReadAll(dir / "model.safetensors");
    WriteAll(dir / "model.safetensors", bytes.substr(0, bytes.size() / 2));
  });
  // The manifest says another version.
  appear(400, [](const fs::path& dir) {
    WriteAll(dir / "manifest.json",
             absl::StrReplaceAll(ReadAll(dir / "manifest.json"),
                                 {{"\"version\": 400", "\"version\": 399"}}));
  });
  // Garbage under a manifest that vouches for it: checksums pass, the
  // safetensors parser rejects it.
  appear(500, [](const fs::path& dir) {
    const std::string garbage(4096, '\x7f');
    WriteAll(dir / "model.safetensors", garbage);
    const std::string sha256 = *Sha256Hex(garbage);
    std::string manifest = ReadAll(dir / "manifest.json");
    const std::string original =
        *Sha256Hex(ReadAll(dir / "../100/model.safetensors"));
    manifest = absl::StrReplaceAll(manifest, {{original, sha256}});
    WriteAll(dir / "manifest.json", manifest);
  });

  const fs::path log = dir_ / "generator.log";
  for (const char* expected :
       {"model words version 200 failed to load and will not be retried: "
        "DATA_LOSS",
        "model words version 300 failed to load and will not be retried: "
        "DATA_LOSS",
        "model words version 400 failed to load and will not be retried: "
        "DATA_LOSS",
        "model words version 500 failed to load and will not be retried"}) {
    EXPECT_TRUE(WaitForText(log, expected)) << expected << "\n" << ReadAll(log);
  }
  const std::string text = ReadAll(log);
  EXPECT_THAT(text, HasSubstr("is corrupt: its SHA-256 is"));
  EXPECT_THAT(text, HasSubstr("(truncated?)"));
  EXPECT_THAT(text, HasSubstr("\"version\" is not 400"));
  ExpectServing(100);
  absl::StatusOr<v1::ListModelsResponse> models =
      generator_client_->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->models_size(), 1);
  ASSERT_EQ(models->models(0).versions_size(), 1);
  EXPECT_EQ(models->models(0).versions(0).version(), 100);
}

TEST_F(FaultsTest, RetentionNeverDeletesAServedVersion) {
  StartTrainer({}, {"--keep_versions=1"});
  ASSERT_EQ(Train(100, /*resume=*/false).back().finished().state(),
            v1::JOB_STATE_SUCCEEDED);
  // Two versions loaded: once it sees 300 it serves 300 and still 100.
  StartGenerator(/*versions_to_keep=*/2);
  ASSERT_TRUE(
      WaitForVersion(*generator_client_, "words", 100, absl::Seconds(20)));
  // The generator's lease names version 100; freeze the generator so that it
  // keeps serving (and leasing) exactly that while the trainer publishes.
  const fs::path leases = dir_ / "checkpoints" / ".leases";
  std::string lease;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline && fs::is_directory(leases)) {
    for (const auto& entry : fs::directory_iterator(leases)) {
      if (entry.path().filename().string()[0] != '.') {
        lease = entry.path().string();
      }
    }
    if (!lease.empty()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_FALSE(lease.empty()) << "the generator wrote no lease";
  ASSERT_TRUE(WaitForText(lease, "\"words\":[100]"));
  ASSERT_TRUE(testing::WaitFor([&] { return Health() == 1; }));
  generator_->Signal(SIGSTOP);

  // keep 1: after 300 is published only 300 would stay, but 100 is served.
  ASSERT_EQ(Train(300, /*resume=*/true).back().finished().state(),
            v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(VersionsOnDisk(), ElementsAre(100, 300));
  EXPECT_THAT(ReadAll(Path("trainer.log")),
              HasSubstr("retention (keep 1) deleted version(s) 200"));
  generator_->Signal(SIGCONT);
  ExpectServing(100);

  // The generator goes away cleanly and drops its lease: the next publish
  // deletes what it served.
  generator_->Signal(SIGTERM);
  EXPECT_EQ(generator_->Wait(absl::Seconds(20)), 0);
  EXPECT_FALSE(fs::exists(lease));
  ASSERT_EQ(Train(400, /*resume=*/true).back().finished().state(),
            v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(VersionsOnDisk(), ElementsAre(400));
  for (const auto& entry : fs::directory_iterator(dir_ / "checkpoints/words")) {
    EXPECT_EQ(entry.path().filename().string(), "400") << "left behind";
  }
}

TEST_F(FaultsTest, BadRetentionFlagsAreRejectedAtStart) {
  for (const auto& [flag, message] :
       std::vector<std::pair<std::string, std::string>>{
           {"--keep_versions=-1", "--keep_versions must be >= 0"},
           {"--lease_ttl=5s", "--lease_ttl must be at least 15s"}}) {
    for (const char* command : {"train", "serve"}) {
      const std::string log = Path(absl::StrCat(command, ".log"));
      ChildProcess trainer(
          {MICROGPT_TRAINER_BIN, command, "--data", Path("data/words.txt"),
           "--model", "words", "--checkpoint_root", Path("checkpoints"),
           "--port=0", flag},
          log);
      EXPECT_EQ(trainer.Wait(absl::Seconds(20)), 1) << command << " " << flag;
      EXPECT_THAT(ReadAll(log), HasSubstr(message)) << command;
    }
  }
}

}  // namespace
}  // namespace microgpt
