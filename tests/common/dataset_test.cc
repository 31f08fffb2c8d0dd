#include "common/dataset.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace microgpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseDocumentsTest, OneDocumentPerLine) {
  const auto docs = ParseDocuments("emma\nolivia\nava\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_THAT(*docs, ElementsAre("emma", "olivia", "ava"));
}

TEST(ParseDocumentsTest, LastLineNeedsNoNewline) {
  const auto docs = ParseDocuments("emma\nava");
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_THAT(*docs, ElementsAre("emma", "ava"));
}

TEST(ParseDocumentsTest, StripsSurroundingAsciiWhitespaceAndDropsEmptyLines) {
  const auto docs = ParseDocuments(
      "\n  emma \r\n\r\n\t\n olivia\t\r\n \v\f \nmary ann\n\n\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  // Inner whitespace is part of the document.
  EXPECT_THAT(*docs, ElementsAre("emma", "olivia", "mary ann"));
}

TEST(ParseDocumentsTest, KeepsNonAsciiCharactersAndNonAsciiSpace) {
  // U+00A0 (no-break space) is not ASCII whitespace: it stays.
  const auto docs = ParseDocuments("zo\xC3\xAB\r\n\xE6\x97\xA5\xC2\xA0\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_THAT(*docs, ElementsAre("zo\xC3\xAB", "\xE6\x97\xA5\xC2\xA0"));
}

TEST(ParseDocumentsTest, InvalidUtf8NamesTheLine) {
  EXPECT_THAT(ParseDocuments("emma\nava\n\nab\xFF\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 4 is not valid UTF-8 (byte 3")));
  EXPECT_THAT(ParseDocuments("\xED\xA0\x80\n"),  // a surrogate
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 1 is not valid UTF-8")));
  // Even on a line that would be dropped as whitespace-only.
  EXPECT_THAT(
      ParseDocuments("a\n\xC0\xA0\n"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
}

TEST(ParseDocumentsTest, NoDocumentIsAnError) {
  for (const char* text : {"", "\n", " \r\n\t\n\n"}) {
    EXPECT_THAT(
        ParseDocuments(text),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no documents")))
        << text;
  }
}

class LoadDocumentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/dataset_test_XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::string dir_;
};

TEST_F(LoadDocumentsTest, LoadsAFile) {
  const std::string path = Write("names.txt", "emma\r\nolivia\r\n");
  const auto docs = LoadDocuments(path);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_THAT(*docs, ElementsAre("emma", "olivia"));
}

TEST_F(LoadDocumentsTest, MissingFileIsNotFound) {
  EXPECT_THAT(LoadDocuments(dir_ + "/missing.txt"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.txt")));
  EXPECT_THAT(LoadDocuments(dir_ + "/no/such/dir.txt"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(LoadDocumentsTest, SizeLimit) {
  const std::string path = Write("big.txt", std::string(99, 'a') + "\n");
  EXPECT_TRUE(LoadDocuments(path, 100).ok());
  EXPECT_THAT(LoadDocuments(path, 99),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("larger than the limit of 99 bytes")));
}

TEST_F(LoadDocumentsTest, DirectoryAndBadContentAreInvalid) {
  EXPECT_THAT(LoadDocuments(dir_), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("directory")));
  const std::string empty = Write("empty.txt", "\n\n");
  EXPECT_THAT(LoadDocuments(empty), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("empty.txt")));
  const std::string bad = Write("bad.txt", "ok\nbad\xFE\n");
  EXPECT_THAT(LoadDocuments(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("line 2")));
}

TEST(NamesDatasetTest, ReferenceDataset) {
  const std::string path = "/work/shared/data/names.txt";
  if (::access(path.c_str(), R_OK) != 0) GTEST_SKIP() << "no " << path;
  const auto docs = LoadDocuments(path);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(docs->size(), 32033u);
  EXPECT_EQ(Tokenizer::FromDocuments(*docs).vocab_size(), 27);
}

}  // namespace
}  // namespace microgpt
