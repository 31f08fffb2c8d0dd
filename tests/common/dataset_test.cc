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

class LoadDatasetTest : public ::testing::Test {
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

TEST_F(LoadDatasetTest, LoadsAFile) {
  const std::string path = Write("names.txt", "emma\r\nolivia\r\n");
  const auto docs = LoadDataset(path, DatasetFormat::kDocuments);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(docs->format, DatasetFormat::kDocuments);
  EXPECT_THAT(docs->documents, ElementsAre("emma", "olivia"));
}

TEST_F(LoadDatasetTest, MissingFileIsNotFound) {
  EXPECT_THAT(LoadDataset(dir_ + "/missing.txt", DatasetFormat::kDocuments),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.txt")));
  EXPECT_THAT(LoadDataset(dir_ + "/no/such/dir.txt", DatasetFormat::kDocuments),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(LoadDatasetTest, SizeLimit) {
  const std::string path = Write("big.txt", std::string(99, 'a') + "\n");
  EXPECT_TRUE(LoadDataset(path, DatasetFormat::kDocuments, 100).ok());
  EXPECT_THAT(LoadDataset(path, DatasetFormat::kDocuments, 99),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("larger than the limit of 99 bytes")));
}

TEST_F(LoadDatasetTest, DirectoryAndBadContentAreInvalid) {
  EXPECT_THAT(
      LoadDataset(dir_, DatasetFormat::kDocuments),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("directory")));
  const std::string empty = Write("empty.txt", "\n\n");
  EXPECT_THAT(
      LoadDataset(empty, DatasetFormat::kDocuments),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty.txt")));
  const std::string bad = Write("bad.txt", "ok\nbad\xFE\n");
  EXPECT_THAT(
      LoadDataset(bad, DatasetFormat::kDocuments),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
}

TEST_F(LoadDatasetTest, TextIsTheWholeFileNewlinesIncluded) {
  const std::string text =
      "First Citizen:\nBefore we proceed,\r\n\n  hear me.\n";
  const auto dataset = LoadDataset(Write("t.txt", text), DatasetFormat::kText);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->format, DatasetFormat::kText);
  EXPECT_EQ(dataset->text, text);
  EXPECT_TRUE(dataset->documents.empty());
}

TEST_F(LoadDatasetTest, BadTextIsRefusedNamingTheLineAndByte) {
  EXPECT_THAT(
      LoadDataset(Write("bad.txt", "ok\nab\xFE\n"), DatasetFormat::kText),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("bad.txt: line 2 is not valid UTF-8 (byte 3 "
                         "of the line)")));
  EXPECT_THAT(LoadDataset(Write("empty.txt", ""), DatasetFormat::kText),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  // Whitespace alone is text (nothing is stripped in this format).
  EXPECT_TRUE(LoadDataset(Write("nl.txt", "\n\n"), DatasetFormat::kText).ok());
}

TEST(DatasetFormatTest, NamesRoundTrip) {
  for (DatasetFormat format :
       {DatasetFormat::kDocuments, DatasetFormat::kText}) {
    const auto parsed = ParseDatasetFormat(DatasetFormatName(format));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, format);
  }
  EXPECT_THAT(ParseDatasetFormat("lines"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"documents\" or \"text\"")));
}

TEST(NamesDatasetTest, ReferenceDataset) {
  const std::string path = "/work/shared/data/names.txt";
  if (::access(path.c_str(), R_OK) != 0) GTEST_SKIP() << "no " << path;
  const auto docs = LoadDataset(path, DatasetFormat::kDocuments);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(docs->documents.size(), 32033u);
  EXPECT_EQ(Tokenizer::FromDocuments(docs->documents).vocab_size(), 27);
}

}  // namespace
}  // namespace microgpt
