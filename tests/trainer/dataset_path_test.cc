#include "trainer/dataset_path.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/trainer/trainer_test_util.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;
using ::microgpt::testing::StatusIs;
using ::microgpt::testing::TempDir;
using ::microgpt::testing::WriteFile;

class DatasetPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root_.Sub("data/sub"));
    WriteFile(root_.Sub("data/names.txt"), "emma\n");
    WriteFile(root_.Sub("data/sub/more.txt"), "ava\n");
    WriteFile(root_.Sub("secret.txt"), "outside\n");
  }
  std::string data() const { return root_.Sub("data"); }

  TempDir root_;
};

TEST_F(DatasetPathTest, ResolvesFilesUnderTheRoot) {
  auto path = ResolveDatasetPath(data(), "names.txt");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, fs::canonical(data() + "/names.txt").string());
  path = ResolveDatasetPath(data(), "sub/./more.txt");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, fs::canonical(data() + "/sub/more.txt").string());
}

TEST_F(DatasetPathTest, RejectsDotDotEvenWhenItStaysInside) {
  EXPECT_THAT(ResolveDatasetPath(data(), "../secret.txt").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "dataset_path"));
  EXPECT_THAT(ResolveDatasetPath(data(), "sub/../names.txt").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ".."));
}

TEST_F(DatasetPathTest, RejectsAbsoluteAndEmptyPaths) {
  EXPECT_THAT(ResolveDatasetPath(data(), "/etc/passwd").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "absolute"));
  EXPECT_THAT(ResolveDatasetPath(data(), data() + "/names.txt").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "absolute"));
  EXPECT_THAT(ResolveDatasetPath(data(), "").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "dataset_path"));
  EXPECT_THAT(ResolveDatasetPath(data(), std::string("a\0b", 3)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "NUL"));
}

TEST_F(DatasetPathTest, RejectsSymlinksThatLeaveTheRoot) {
  fs::create_symlink(root_.Sub("secret.txt"), data() + "/link.txt");
  fs::create_directory_symlink(root_.path(), data() + "/up");
  fs::create_symlink(root_.Sub("missing.txt"), data() + "/dangling.txt");
  EXPECT_THAT(ResolveDatasetPath(data(), "link.txt").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "outside"));
  EXPECT_THAT(ResolveDatasetPath(data(), "up/secret.txt").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "outside"));
  EXPECT_THAT(ResolveDatasetPath(data(), "dangling.txt").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "outside"));
}

TEST_F(DatasetPathTest, FollowsSymlinksThatStayInside) {
  fs::create_symlink(data() + "/names.txt", data() + "/alias.txt");
  auto path = ResolveDatasetPath(data(), "alias.txt");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, fs::canonical(data() + "/names.txt").string());
}

TEST_F(DatasetPathTest, RootThroughASymlinkWorks) {
  fs::create_directory_symlink(data(), root_.Sub("data-link"));
  EXPECT_TRUE(ResolveDatasetPath(root_.Sub("data-link"), "names.txt").ok());
}

TEST_F(DatasetPathTest, MissingFilesAndDirectories) {
  EXPECT_THAT(ResolveDatasetPath(data(), "nope.txt").status(),
              StatusIs(absl::StatusCode::kNotFound, "nope.txt"));
  EXPECT_THAT(
      ResolveDatasetPath(data(), "sub").status(),
      StatusIs(absl::StatusCode::kInvalidArgument, "not a regular file"));
  EXPECT_THAT(ResolveDatasetPath(data(), ".").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "dataset_path"));
  EXPECT_THAT(ResolveDatasetPath(root_.Sub("no-root"), "names.txt").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "data root"));
}

}  // namespace
}  // namespace microgpt
