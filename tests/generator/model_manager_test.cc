#include "generator/model_manager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
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
#include "tests/generator/test_util.h"
#include "tests/status_matchers.h"

namespace microgpt {
namespace {

using ::microgpt::testing::CorruptVersion;
using ::microgpt::testing::MakeCheckpoint;
using ::microgpt::testing::Publish;
using ::microgpt::testing::SmallConfig;
using ::microgpt::testing::TempDir;
using ::microgpt::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModelManagerOptions Options(const std::string& root, int keep = 2) {
  ModelManagerOptions options;
  options.root = root;
  options.versions_to_keep = keep;
  return options;
}

std::vector<int64_t> LoadedVersions(const ModelManager& manager,
                                    const std::string& name) {
  std::vector<int64_t> versions;
  for (const auto& model : manager.List()) {
    if (model.name != name) continue;
    for (const auto& servable : model.versions) {
      versions.push_back(servable->version);
    }
  }
  return versions;
}

TEST(ModelManagerTest, PollOncePicksUpNewVersionsAndKeepsTheNewest) {
  TempDir root;
  ModelManager manager(Options(root.path(), /*keep=*/2));
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_EQ(manager.num_loaded_versions(), 0);

  Publish(root.path(), "names", 100,
          MakeCheckpoint(SmallConfig(), 1, 100, 2.9));
  ASSERT_TRUE(manager.PollOnce().ok());
  auto latest = manager.Get("names", 0);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ((*latest)->version, 100);
  EXPECT_EQ((*latest)->step, 100);
  EXPECT_DOUBLE_EQ((*latest)->loss, 2.9);
  EXPECT_EQ((*latest)->name, "names");
  EXPECT_EQ((*latest)->tokenizer.vocab_size(), 27);

  Publish(root.path(), "names", 200, MakeCheckpoint(SmallConfig(), 2, 200));
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_EQ((*manager.Get("names", 0))->version, 200);
  EXPECT_THAT(LoadedVersions(manager, "names"), ElementsAre(200, 100));

  // A third version pushes the oldest out; a reader holding it keeps it.
  std::shared_ptr<const ServableModel> held = *manager.Get("names", 100);
  Publish(root.path(), "names", 300, MakeCheckpoint(SmallConfig(), 3, 300));
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_THAT(LoadedVersions(manager, "names"), ElementsAre(300, 200));
  EXPECT_EQ(manager.Get("names", 100).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(held->version, 100);
  EXPECT_EQ(held->model.parameters().size(),
            ParameterLayout(held->model.config()).total_size());
  EXPECT_EQ(manager.loads(), 3);
}

TEST(ModelManagerTest, AModelPublishedButNotLoadedYetSaysSo) {
  TempDir root;
  ModelManager manager(Options(root.path(), /*keep=*/2));
  ASSERT_TRUE(manager.PollOnce().ok());
  Publish(root.path(), "names", 100, MakeCheckpoint(SmallConfig(), 1, 100));
  Publish(root.path(), "other", 5, MakeCheckpoint(SmallConfig(), 2, 5));
  ASSERT_TRUE(manager.PollOnce().ok());
  Publish(root.path(), "late", 7, MakeCheckpoint(SmallConfig(), 3, 7));
  // Before the next poll: published, not loaded yet.
  EXPECT_THAT(manager.Get("late", 0),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::HasSubstr(
                           "model 'late' is not loaded yet: version 7 is "
                           "published and loads at the next scan")));
  EXPECT_THAT(manager.Get("nowhere", 0),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::Eq("model 'nowhere' is not loaded")));
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_TRUE(manager.Get("late", 0).ok());
}

TEST(ModelManagerTest, APublishIsServedAtOnceNotAtTheNextPoll) {
  TempDir root;
  ModelManager manager(Options(root.path(), /*keep=*/2));
  manager.StartPolling(absl::Minutes(10));  // the fallback never comes
  for (int64_t version : {100, 200}) {
    const absl::Time published = absl::Now();
    Publish(root.path(), "names", version,
            MakeCheckpoint(SmallConfig(), 1, version));
    absl::StatusOr<std::shared_ptr<const ServableModel>> loaded;
    while (absl::Now() - published < absl::Seconds(5)) {
      loaded = manager.Get("names", 0);
      if (loaded.ok() && (*loaded)->version == version) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ((*loaded)->version, version);
    // A new model directory (first) and a version of a known one (second)
    // both wake the poller; a generous bound for a loaded machine.
    EXPECT_LT(absl::Now() - published, absl::Seconds(2));
  }
  manager.Stop();
}

TEST(ModelManagerTest, FirstPollLoadsOnlyTheNewestVersionsToKeep) {
  TempDir root;
  for (int v = 1; v <= 4; ++v) {
    Publish(root.path(), "m", v, MakeCheckpoint(SmallConfig(), v, v));
  }
  ModelManager manager(Options(root.path(), /*keep=*/1));
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_THAT(LoadedVersions(manager, "m"), ElementsAre(4));
  EXPECT_EQ(manager.loads(), 1);
}

TEST(ModelManagerTest, CorruptVersionIsSkippedAndTheOldOneKeepsServing) {
  TempDir root;
  ModelManager manager(Options(root.path()));
  Publish(root.path(), "names", 1, MakeCheckpoint(SmallConfig(), 1, 1));
  ASSERT_TRUE(manager.PollOnce().ok());

  Publish(root.path(), "names", 2, MakeCheckpoint(SmallConfig(), 2, 2));
  CorruptVersion(root.path(), "names", 2);
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_EQ((*manager.Get("names", 0))->version, 1);
  EXPECT_EQ(manager.Get("names", 2).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager.failed_loads(), 1);

  // Not retried on the next poll.
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_EQ(manager.failed_loads(), 1);
  EXPECT_EQ((*manager.Get("names", 0))->version, 1);

  // A good newer version still gets loaded.
  Publish(root.path(), "names", 3, MakeCheckpoint(SmallConfig(), 3, 3));
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_EQ((*manager.Get("names", 0))->version, 3);
  EXPECT_THAT(LoadedVersions(manager, "names"), ElementsAre(3, 1));
}

TEST(ModelManagerTest, GetResolvesNamesAndVersions) {
  TempDir root;
  ModelManager manager(Options(root.path()));
  EXPECT_EQ(manager.Get("", 0).status().code(), absl::StatusCode::kUnavailable);

  Publish(root.path(), "alpha", 5, MakeCheckpoint(SmallConfig(), 1, 5));
  ASSERT_TRUE(manager.PollOnce().ok());
  auto only = manager.Get("", 0);
  ASSERT_TRUE(only.ok()) << only.status();
  EXPECT_EQ((*only)->name, "alpha");
  EXPECT_EQ((*manager.Get("", 5))->version, 5);

  absl::Status unknown = manager.Get("beta", 0).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.message(), HasSubstr("beta"));
  absl::Status no_version = manager.Get("alpha", 6).status();
  EXPECT_EQ(no_version.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(no_version.message(), HasSubstr("6"));
  EXPECT_EQ(manager.Get("alpha", -1).status().code(),
            absl::StatusCode::kInvalidArgument);

  Publish(root.path(), "beta", 1, MakeCheckpoint(SmallConfig(), 2, 1));
  ASSERT_TRUE(manager.PollOnce().ok());
  absl::Status ambiguous = manager.Get("", 0).status();
  EXPECT_EQ(ambiguous.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ambiguous.message(), HasSubstr("model"));
  EXPECT_EQ((*manager.Get("beta", 0))->name, "beta");
  ASSERT_EQ(manager.List().size(), 2u);
  EXPECT_EQ(manager.List()[0].name, "alpha");
}

TEST(ModelManagerTest, OnLoadIsCalledForEachLoadedVersion) {
  TempDir root;
  std::vector<std::string> loaded;
  ModelManagerOptions options = Options(root.path());
  options.on_load = [&](const ServableModel& servable) {
    loaded.push_back(servable.name + "/" + std::to_string(servable.version));
  };
  ModelManager manager(options);
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_TRUE(loaded.empty());
  Publish(root.path(), "m", 7, MakeCheckpoint(SmallConfig(), 1, 7));
  ASSERT_TRUE(manager.PollOnce().ok());
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_THAT(loaded, ElementsAre("m/7"));
}

TEST(ModelManagerTest, PollThreadPicksUpNewVersions) {
  TempDir root;
  std::atomic<int> loads{0};
  ModelManagerOptions options = Options(root.path());
  options.on_load = [&](const ServableModel&) { ++loads; };
  ModelManager manager(options);
  manager.StartPolling(absl::Milliseconds(5));
  Publish(root.path(), "m", 1, MakeCheckpoint(SmallConfig(), 1, 1));
  EXPECT_TRUE(WaitFor([&] { return manager.Get("m", 1).ok(); }));
  Publish(root.path(), "m", 2, MakeCheckpoint(SmallConfig(), 2, 2));
  EXPECT_TRUE(WaitFor([&] {
    return manager.Get("m", 0).ok() && (*manager.Get("m", 0))->version == 2;
  }));
  manager.Stop();
  manager.Stop();  // idempotent
  EXPECT_EQ(loads.load(), 2);
}

TEST(ModelManagerTest, LeaseNamesTheLoadedVersionsAndGoesOnStop) {
  TempDir root;
  for (int v = 1; v <= 3; ++v) {
    Publish(root.path(), "names", v, MakeCheckpoint(SmallConfig(), v, v));
  }
  ModelManagerOptions options = Options(root.path(), /*keep=*/2);
  options.lease_holder = "gen-1";
  ModelManager manager(options);
  ASSERT_TRUE(manager.PollOnce().ok());
  RetentionPolicy retention;
  retention.keep_versions = 1;
  const CheckpointStore trainer_view(root.path(), retention);
  absl::StatusOr<std::set<int64_t>> leased =
      trainer_view.LeasedVersions("names");
  ASSERT_TRUE(leased.ok()) << leased.status();
  EXPECT_THAT(*leased, ElementsAre(2, 3));

  // The trainer's retention (keep 1) spares version 2, which is served.
  absl::StatusOr<std::vector<int64_t>> deleted =
      trainer_view.ApplyRetention("names");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_THAT(*deleted, ElementsAre(1));

  // A new version: the lease follows what is loaded.
  Publish(root.path(), "names", 4, MakeCheckpoint(SmallConfig(), 4, 4));
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_THAT(*trainer_view.LeasedVersions("names"), ElementsAre(3, 4));
  EXPECT_THAT(*trainer_view.ApplyRetention("names"), ElementsAre(2));

  manager.Stop();
  EXPECT_THAT(*trainer_view.LeasedVersions("names"), ::testing::IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(root.path() + "/.leases/gen-1"));
  // Served versions stay in memory after Stop.
  EXPECT_EQ((*manager.Get("names", 0))->version, 4);
}

TEST(ModelManagerTest, LeaseIsRenewedWhileNothingChanges) {
  TempDir root;
  Publish(root.path(), "names", 1, MakeCheckpoint(SmallConfig(), 1, 1));
  ModelManagerOptions options = Options(root.path());
  options.lease_holder = "gen-1";
  options.lease_refresh = absl::ZeroDuration();
  ModelManager manager(options);
  ASSERT_TRUE(manager.PollOnce().ok());
  const std::string lease = root.path() + "/.leases/gen-1";
  // Backdate the lease past the trainer's TTL: it would protect nothing...
  const timespec old = absl::ToTimespec(absl::Now() - absl::Minutes(5));
  const timespec times[2] = {old, old};
  ASSERT_EQ(::utimensat(AT_FDCWD, lease.c_str(), times, 0), 0);
  // ...until the next poll renews it.
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_THAT(*CheckpointStore(root.path()).LeasedVersions("names"),
              ElementsAre(1));
}

TEST(ModelManagerTest, UnwritableLeaseIsLoggedAndServingGoesOn) {
  TempDir root;
  Publish(root.path(), "names", 1, MakeCheckpoint(SmallConfig(), 1, 1));
  // A file where the lease directory should be: WriteLease fails.
  std::ofstream(root.path() + "/.leases") << "not a directory";
  ModelManagerOptions options = Options(root.path());
  options.lease_holder = "gen-1";
  ModelManager manager(options);
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_EQ((*manager.Get("names", 0))->version, 1);
  Publish(root.path(), "names", 2, MakeCheckpoint(SmallConfig(), 2, 2));
  ASSERT_TRUE(manager.PollOnce().ok());
  EXPECT_EQ((*manager.Get("names", 0))->version, 2);
}

TEST(ModelManagerTest, DefaultLeaseHolderIsAValidName) {
  const std::string holder = DefaultLeaseHolder();
  EXPECT_TRUE(ValidateModelName(holder).ok()) << holder;
  EXPECT_THAT(holder, ::testing::EndsWith(absl::StrCat("-", getpid())));
}

TEST(ModelManagerTest, MissingRootIsAnErrorNotACrash) {
  ModelManager manager(Options("/nonexistent/microgpt/root"));
  EXPECT_FALSE(manager.PollOnce().ok());
  EXPECT_EQ(manager.num_loaded_versions(), 0);
}

}  // namespace
}  // namespace microgpt
