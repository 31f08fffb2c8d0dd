// The checkpoint directory format: manifests written and parsed (and every
// way one is rejected), versions published through a locked temporary
// directory, orphans removed only when no process holds them, and versions
// verified against their manifest.
#include "common/checkpoint_dir.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/flock_holder.h"
#include "tests/status_matchers.h"
#include "tests/temp_dir.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;
using ::microgpt::testing::FlockHolder;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::vector<std::string> Entries(const std::string& path) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(path, error)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

const std::vector<std::pair<std::string, std::string>>& SomeFiles() {
  static const auto* files =
      new std::vector<std::pair<std::string, std::string>>{
          {"model.safetensors", "model bytes"},
          {"loss.csv", "step,loss\n1,3\n"},
          {"empty.txt", ""}};
  return *files;
}

// A manifest text of version 7 with `files` as its "files" value.
std::string ManifestWithFiles(const std::string& files) {
  return absl::StrCat(R"({"version": 7, "files": )", files, "}");
}

std::string Entry(const std::string& size, const std::string& sha256) {
  return absl::StrCat(R"({"size": )", size, R"(, "sha256": )", sha256, "}");
}

// A well-formed "sha256" value.
std::string Digest() { return absl::StrCat("\"", std::string(64, 'a'), "\""); }

TEST(ManifestTest, RoundTrip) {
  absl::StatusOr<Manifest> manifest = MakeManifest(7, SomeFiles());
  ASSERT_THAT(manifest, IsOk());
  EXPECT_EQ(manifest->version, 7);
  ASSERT_EQ(manifest->files.size(), 3u);
  for (const auto& [name, bytes] : SomeFiles()) {
    EXPECT_EQ(manifest->files[name].size, static_cast<int64_t>(bytes.size()))
        << name;
    EXPECT_EQ(manifest->files[name].sha256, *Sha256Hex(bytes)) << name;
  }
  const std::string text = SerializeManifest(*manifest);
  EXPECT_THAT(text, HasSubstr("\"version\": 7"));
  absl::StatusOr<Manifest> parsed = ParseManifest(text, 7);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(*parsed, *manifest);
  EXPECT_EQ(SerializeManifest(*parsed), text);
  // Unknown keys are left for later versions of the format.
  EXPECT_THAT(ParseManifest(R"({"version": 7, "files": {}, "note": 1})", 7),
              IsOk());
}

TEST(ManifestTest, MakeManifestRejectsBadVersionsAndNames) {
  EXPECT_THAT(MakeManifest(0, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0")));
  for (const std::string& name :
       {std::string(""), std::string(".hidden"), std::string("a/b"),
        std::string("a\0b", 3), std::string("manifest.json"),
        std::string(".tmp-1-2-3")}) {
    EXPECT_THAT(MakeManifest(1, {{name, "x"}}),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << name;
  }
  EXPECT_THAT(MakeManifest(1, {{"a", "x"}, {"a", "y"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
}

TEST(ManifestTest, ParseRejectsEveryMalformedManifest) {
  const std::string good = Entry("3", Digest());
  const std::vector<std::pair<std::string, std::string>> cases = {
      // Not JSON, or not an object.
      {"", "not a JSON object"},
      {"{", "not a JSON object"},
      {"not json", "not a JSON object"},
      {"[]", "not a JSON object"},
      {"7", "not a JSON object"},
      // "version" missing, of another type or another version.
      {R"({"files": {}})", "\"version\" is not 7"},
      {R"({"version": "7", "files": {}})", "\"version\" is not 7"},
      {R"({"version": 7.5, "files": {}})", "\"version\" is not 7"},
      {R"({"version": 8, "files": {}})", "\"version\" is not 7"},
      // "files" missing or not an object.
      {R"({"version": 7})", "no \"files\" object"},
      {R"({"version": 7, "files": []})", "no \"files\" object"},
      // Entries without a valid size and digest.
      {ManifestWithFiles(R"({"a": 1})"), "the entry of a needs"},
      {ManifestWithFiles(R"({"a": {"sha256": )" + Digest() + "}}"),
       "the entry of a needs"},
      {ManifestWithFiles(R"({"a": {"size": 3}})"), "the entry of a needs"},
      {ManifestWithFiles("{\"a\": " + Entry("-1", Digest()) + "}"),
       "the entry of a needs"},
      {ManifestWithFiles("{\"a\": " + Entry("1.5", Digest()) + "}"),
       "the entry of a needs"},
      {ManifestWithFiles("{\"a\": " + Entry("\"3\"", Digest()) + "}"),
       "the entry of a needs"},
      {ManifestWithFiles("{\"a\": " + Entry("9223372036854775808", Digest()) +
                         "}"),
       "the entry of a needs"},
      {ManifestWithFiles("{\"a\": " + Entry("3", "\"abc\"") + "}"),
       "the entry of a needs"},
      {ManifestWithFiles(
           "{\"a\": " + Entry("3", "\"" + std::string(64, 'A') + "\"") + "}"),
       "the entry of a needs"},
      {ManifestWithFiles("{\"a\": " + Entry("3", "3") + "}"),
       "the entry of a needs"},
      // Names that are not plain file names.
      {ManifestWithFiles("{\"\": " + good + "}"), "bad file name"},
      {ManifestWithFiles("{\".hidden\": " + good + "}"), "bad file name"},
      {ManifestWithFiles("{\"..\": " + good + "}"), "bad file name"},
      {ManifestWithFiles("{\"a/b\": " + good + "}"), "bad file name"},
      {ManifestWithFiles("{\"../x\": " + good + "}"), "bad file name"},
      {ManifestWithFiles("{\"a\\u0000b\": " + good + "}"), "bad file name"},
      {ManifestWithFiles("{\"manifest.json\": " + good + "}"), "bad file name"},
      // Keys given twice: nlohmann would silently keep one.
      {ManifestWithFiles("{\"a\": " + good + ", \"a\": " + good + "}"),
       "has \"a\" twice"},
      {R"({"version": 7, "version": 7, "files": {}})", "has \"version\" twice"},
      {ManifestWithFiles(R"({"a": {"size": 3, "size": 3, "sha256": )" +
                         Digest() + "}}"),
       "has \"size\" twice"},
  };
  for (const auto& [text, why] : cases) {
    EXPECT_THAT(ParseManifest(text, 7),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr(why)))
        << text;
  }
  // The same entry once is fine, and so is a size of 0.
  EXPECT_THAT(ParseManifest(ManifestWithFiles("{\"a\": " + good + ", \"b\": " +
                                              Entry("0", Digest()) + "}"),
                            7),
              IsOk());
}

TEST(VersionNameTest, CanonicalPositiveDecimalsOnly) {
  int64_t version = 0;
  EXPECT_TRUE(ParseVersionName("1", &version));
  EXPECT_EQ(version, 1);
  EXPECT_TRUE(ParseVersionName("9223372036854775807", &version));
  EXPECT_EQ(version, 9223372036854775807);
  for (const char* name : {"", "0", "007", "+8", "-9", "1e3", "12a", " 13",
                           "9223372036854775808", ".tmp-6-1-ab"}) {
    EXPECT_FALSE(ParseVersionName(name, &version)) << name;
  }
  EXPECT_THAT(ValidateVersion(1), IsOk());
  EXPECT_THAT(ValidateVersion(0),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(TemporaryNameTest, HiddenUniqueAndNeverAVersionOrFile) {
  const std::string a = TemporaryName("7");
  const std::string b = TemporaryName("7");
  EXPECT_NE(a, b);
  EXPECT_TRUE(IsTemporaryName(a));
  EXPECT_THAT(a, HasSubstr(absl::StrCat(".tmp-7-", ::getpid(), "-")));
  int64_t version;
  EXPECT_FALSE(ParseVersionName(a, &version));
  EXPECT_FALSE(IsPlainFileName(a));
  EXPECT_FALSE(IsTemporaryName("7"));
  EXPECT_TRUE(IsPlainFileName("loss.csv"));
}

class CheckpointDirTest : public ::testing::Test {
 protected:
  // Publishes SomeFiles() and their manifest as `version`.
  absl::Status PublishSomeFiles(int64_t version) {
    return PublishVersionDirectory(
        model_dir_, version, [&](const std::string& temp) -> absl::Status {
          absl::StatusOr<Manifest> manifest =
              MakeManifest(version, SomeFiles());
          if (!manifest.ok()) return manifest.status();
          for (const auto& [name, bytes] : SomeFiles()) {
            WriteBytes(temp + "/" + name, bytes);
          }
          WriteBytes(temp + "/manifest.json", SerializeManifest(*manifest));
          return absl::OkStatus();
        });
  }

  std::string VersionDir(int64_t version) const {
    return absl::StrCat(model_dir_, "/", version);
  }

  testing::TempDir temp_;
  const std::string dir_ = temp_.path();
  const std::string model_dir_ =
      dir_ + "/root/names";  // created by the first publish
};

TEST_F(CheckpointDirTest, PublishedVersionVerifiesAndReadsBack) {
  ASSERT_THAT(PublishSomeFiles(3), IsOk());
  EXPECT_THAT(Entries(model_dir_), ElementsAre("3"));  // no temporary left
  EXPECT_THAT(Entries(VersionDir(3)),
              ElementsAre("empty.txt", "loss.csv", "manifest.json",
                          "model.safetensors"));
  EXPECT_THAT(VerifyVersionDirectory(VersionDir(3), 3), IsOk());

  std::string text;
  absl::StatusOr<Manifest> manifest = ReadManifest(VersionDir(3), 3, &text);
  ASSERT_THAT(manifest, IsOk());
  EXPECT_EQ(text, ReadBytes(VersionDir(3) + "/manifest.json"));
  EXPECT_THAT(ReadVerifiedFile(VersionDir(3), *manifest, "loss.csv"), IsOk());
  EXPECT_EQ(*ReadVerifiedFile(VersionDir(3), *manifest, "loss.csv"),
            "step,loss\n1,3\n");
  EXPECT_THAT(ReadVerifiedFile(VersionDir(3), *manifest, "other.csv"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("lists no")));
  // A manifest read as another version's is not this one's.
  EXPECT_THAT(ReadManifest(VersionDir(3), 4),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr(VersionDir(3) + "/manifest.json: ")));
}

TEST_F(CheckpointDirTest, VerificationCatchesTruncationAndCorruption) {
  ASSERT_THAT(PublishSomeFiles(3), IsOk());
  const std::string path = VersionDir(3) + "/model.safetensors";
  const std::string original = ReadBytes(path);

  WriteBytes(path, original.substr(0, original.size() - 1));
  EXPECT_THAT(VerifyVersionDirectory(VersionDir(3), 3),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));

  std::string flipped = original;
  flipped[2] ^= 0x01;
  WriteBytes(path, flipped);
  EXPECT_THAT(VerifyVersionDirectory(VersionDir(3), 3),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("model.safetensors is corrupt: its SHA-256")));

  WriteBytes(path, original + "x");
  EXPECT_THAT(
      VerifyVersionDirectory(VersionDir(3), 3),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.safetensors")));

  WriteBytes(path, original);
  EXPECT_THAT(VerifyVersionDirectory(VersionDir(3), 3), IsOk());

  // A file the manifest does not list, one it lists that is gone, and no
  // manifest at all.
  WriteBytes(VersionDir(3) + "/stray", "x");
  EXPECT_THAT(VerifyVersionDirectory(VersionDir(3), 3),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("stray")));
  ASSERT_EQ(::unlink((VersionDir(3) + "/stray").c_str()), 0);
  ASSERT_EQ(::unlink((VersionDir(3) + "/loss.csv").c_str()), 0);
  EXPECT_THAT(VerifyVersionDirectory(VersionDir(3), 3),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("loss.csv")));
  ASSERT_EQ(::unlink((VersionDir(3) + "/manifest.json").c_str()), 0);
  EXPECT_THAT(ReadManifest(VersionDir(3), 3),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(VerifyVersionDirectory(VersionDir(3), 3),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("manifest")));
}

TEST_F(CheckpointDirTest, PublishRefusesAnExistingVersion) {
  ASSERT_THAT(PublishSomeFiles(3), IsOk());
  const std::string before = ReadBytes(VersionDir(3) + "/manifest.json");
  bool wrote = false;
  EXPECT_THAT(
      PublishVersionDirectory(model_dir_, 3,
                              [&](const std::string&) {
                                wrote = true;
                                return absl::OkStatus();
                              }),
      StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(VersionDir(3))));
  EXPECT_FALSE(wrote) << "nothing is written for a version that exists";

  // Another writer renames its version 4 into place while this one writes:
  // the commit refuses to replace it and leaves no temporary directory.
  EXPECT_THAT(PublishVersionDirectory(model_dir_, 4,
                                      [&](const std::string& temp) {
                                        WriteBytes(temp + "/mine", "mine");
                                        fs::create_directory(VersionDir(4));
                                        WriteBytes(VersionDir(4) + "/theirs",
                                                   "theirs");
                                        return absl::OkStatus();
                                      }),
              StatusIs(absl::StatusCode::kAlreadyExists, ::testing::_));
  EXPECT_THAT(Entries(model_dir_), ElementsAre("3", "4"));
  EXPECT_THAT(Entries(VersionDir(4)), ElementsAre("theirs"));
  EXPECT_EQ(ReadBytes(VersionDir(3) + "/manifest.json"), before);
}

TEST_F(CheckpointDirTest, FailedWriteLeavesNothing) {
  EXPECT_THAT(PublishVersionDirectory(model_dir_, 5,
                                      [&](const std::string& temp) {
                                        WriteBytes(temp + "/partial", "x");
                                        return absl::DataLossError("broken");
                                      }),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("broken")));
  EXPECT_THAT(Entries(model_dir_), IsEmpty());
  EXPECT_THAT(
      PublishVersionDirectory(
          model_dir_, 0, [](const std::string&) { return absl::OkStatus(); }),
      StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST_F(CheckpointDirTest, OrphansAreRemovedButNotWhatALiveProcessHolds) {
  ASSERT_THAT(PublishSomeFiles(1), IsOk());
  const std::string orphan = model_dir_ + "/.tmp-2-12345-0123456789abcdef";
  ASSERT_TRUE(fs::create_directories(orphan + "/nested"));
  WriteBytes(orphan + "/model.safetensors", "partial");
  const std::string held = model_dir_ + "/.tmp-3-777-00aa";
  ASSERT_TRUE(fs::create_directory(held));
  FlockHolder holder(held);  // a publisher in another process, still writing
  ASSERT_TRUE(holder.locked());

  ASSERT_THAT(RemoveOrphanedTemporaryDirectories(model_dir_), IsOk());
  EXPECT_THAT(Entries(model_dir_), ElementsAre(".tmp-3-777-00aa", "1"));

  holder.Release();  // that publisher died: now it is an orphan
  ASSERT_THAT(RemoveOrphanedTemporaryDirectories(model_dir_), IsOk());
  EXPECT_THAT(Entries(model_dir_), ElementsAre("1"));
  EXPECT_THAT(VerifyVersionDirectory(VersionDir(1), 1), IsOk());
  EXPECT_THAT(RemoveOrphanedTemporaryDirectories(dir_ + "/missing"), IsOk());
}

TEST_F(CheckpointDirTest, APublishInProgressIsLockedAgainstOtherProcesses) {
  std::string seen_temp;
  ASSERT_THAT(
      PublishVersionDirectory(
          model_dir_, 2,
          [&](const std::string& temp) -> absl::Status {
            seen_temp = temp;
            // A cleaner in another process, while this one writes.
            const pid_t pid = ::fork();
            if (pid == 0) {
              const bool removed =
                  !RemoveOrphanedTemporaryDirectories(model_dir_).ok() ||
                  !fs::exists(temp);
              ::_exit(removed ? 1 : 0);
            }
            int status = 0;
            if (pid < 0 || ::waitpid(pid, &status, 0) != pid) {
              return absl::InternalError("cannot run the cleaner");
            }
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
              return absl::InternalError("the cleaner removed it");
            }
            absl::StatusOr<Manifest> manifest = MakeManifest(2, {});
            WriteBytes(temp + "/manifest.json", SerializeManifest(*manifest));
            return absl::OkStatus();
          }),
      IsOk());
  EXPECT_TRUE(IsTemporaryName(fs::path(seen_temp).filename().string()));
  EXPECT_THAT(Entries(model_dir_), ElementsAre("2"));
  EXPECT_THAT(VerifyVersionDirectory(VersionDir(2), 2), IsOk());
}

TEST_F(CheckpointDirTest, DeleteVersionLeavesNothing) {
  ASSERT_THAT(PublishSomeFiles(1), IsOk());
  ASSERT_THAT(PublishSomeFiles(2), IsOk());
  ASSERT_THAT(DeleteVersionDirectory(model_dir_, 1), IsOk());
  EXPECT_THAT(Entries(model_dir_), ElementsAre("2"));
  EXPECT_THAT(DeleteVersionDirectory(model_dir_, 1),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

}  // namespace
}  // namespace microgpt
