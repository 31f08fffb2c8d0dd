// Tests of the tokenizer and of the UTF-8 helpers under it.
#include "common/tokenizer.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace microgpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---------------------------------------------------------------- UTF-8

TEST(Utf8Test, DecodesEveryEncodingLength) {
  // "a", "é" (2 bytes), "日" (3 bytes), "😀" (4 bytes).
  const absl::StatusOr<std::vector<char32_t>> chars =
      DecodeUtf8("a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80");
  ASSERT_TRUE(chars.ok()) << chars.status();
  EXPECT_THAT(*chars, ElementsAre(U'a', U'\u00E9', U'\u65E5', U'\U0001F600'));
}

TEST(Utf8Test, EncodeIsTheInverseOfDecode) {
  for (char32_t c : {0x0u, 0x41u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xD7FFu,
                     0xE000u, 0xFFFDu, 0xFFFFu, 0x10000u, 0x10FFFFu}) {
    const std::string bytes = EncodeUtf8(c);
    char32_t decoded = 0;
    ASSERT_EQ(DecodeUtf8Char(bytes, &decoded), static_cast<int>(bytes.size()))
        << CodePointName(c);
    EXPECT_EQ(decoded, c) << CodePointName(c);
  }
  EXPECT_EQ(EncodeUtf8(U'\u65E5'), "\xE6\x97\xA5");
}

TEST(Utf8Test, RejectsMalformedSequences) {
  const std::vector<std::string> bad = {
      "\x80",                  // a stray continuation byte
      "\xC3",                  // truncated
      "\xE6\x97",              // truncated
      "\xC0\xAF",              // overlong '/'
      "\xC1\xBF",              // overlong
      "\xE0\x80\xAF",          // overlong
      "\xF0\x80\x80\xAF",      // overlong
      "\xED\xA0\x80",          // surrogate U+D800
      "\xED\xBF\xBF",          // surrogate U+DFFF
      "\xF4\x90\x80\x80",      // U+110000
      "\xF8\x88\x80\x80\x80",  // 5-byte form
      "\xFF",
      "\xC3\x28",  // bad continuation
  };
  for (const std::string& s : bad) {
    EXPECT_FALSE(IsValidUtf8(s)) << absl::CHexEscape(s);
    EXPECT_THAT(DecodeUtf8("ok" + s),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("byte offset 2")))
        << absl::CHexEscape(s);
  }
  EXPECT_EQ(FindInvalidUtf8("abc\xFF"), 3u);
  EXPECT_EQ(FindInvalidUtf8("abc"), 3u);
}

TEST(Utf8Test, ReplacesNonScalarValuesWhenEncoding) {
  EXPECT_EQ(EncodeUtf8(0xD800), "\xEF\xBF\xBD");
  EXPECT_EQ(EncodeUtf8(0x110000), "\xEF\xBF\xBD");
  EXPECT_EQ(CodePointName(U'Z'), "U+005A");
  EXPECT_EQ(CodePointName(U'\U0001F600'), "U+1F600");
}

// ------------------------------------------------------------ Tokenizer

TEST(TokenizerTest, VocabularyIsSortedDistinctCharactersThenBos) {
  const std::vector<std::string> docs = {"emma", "olivia", "ava"};
  const Tokenizer tok = Tokenizer::FromDocuments(docs);
  EXPECT_THAT(tok.chars(),
              ElementsAre(U'a', U'e', U'i', U'l', U'm', U'o', U'v'));
  EXPECT_EQ(tok.vocab_size(), 8);
  EXPECT_EQ(tok.bos(), 7);
  const absl::StatusOr<std::vector<int>> ids = tok.EncodeDocument("emma");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(7, 1, 4, 4, 0, 7));
}

TEST(TokenizerTest, RoundTripsEveryDocument) {
  const std::vector<std::string> docs = {"emma",     "olivia", "ava",
                                         "mary ann", "zoë",    "日本語"};
  const Tokenizer tok = Tokenizer::FromDocuments(docs);
  for (const std::string& doc : docs) {
    const absl::StatusOr<std::vector<int>> ids = tok.Encode(doc);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(tok.Decode(*ids), doc);
    const absl::StatusOr<std::vector<int>> with_bos = tok.EncodeDocument(doc);
    ASSERT_TRUE(with_bos.ok());
    EXPECT_EQ(with_bos->size(), ids->size() + 2);
    EXPECT_EQ(with_bos->front(), tok.bos());
    EXPECT_EQ(with_bos->back(), tok.bos());
    EXPECT_EQ(tok.Decode(*with_bos), doc);  // BOS decodes to ""
  }
}

TEST(TokenizerTest, MultibyteCharactersAreOneTokenEach) {
  const std::vector<std::string> docs = {"caf\xC3\xA9", "\xE6\x97\xA5",
                                         "\xF0\x9F\x98\x80"};
  const Tokenizer tok = Tokenizer::FromDocuments(docs);
  // Ordered by code point: a c f é 日 😀.
  EXPECT_THAT(tok.chars(), ElementsAre(U'a', U'c', U'f', U'\u00E9', U'\u65E5',
                                       U'\U0001F600'));
  const absl::StatusOr<std::vector<int>> ids =
      tok.Encode("\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(3, 4, 5));
  EXPECT_EQ(tok.Decode(3), "\xC3\xA9");
  EXPECT_EQ(tok.Decode(4), "\xE6\x97\xA5");
  EXPECT_EQ(tok.Decode(5), "\xF0\x9F\x98\x80");
}

TEST(TokenizerTest, EncodeNamesTheUnknownCharacterAndItsPosition) {
  const std::vector<std::string> docs = {"abc\xE6\x97\xA5"};
  const Tokenizer tok = Tokenizer::FromDocuments(docs);
  EXPECT_THAT(tok.Encode("abcZ"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "character 'Z' (U+005A) at position 3 is not in the "
                       "vocabulary"));
  // Positions count characters, not bytes.
  EXPECT_THAT(tok.Encode("\xE6\x97\xA5\xC3\xA9"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "character '\xC3\xA9' (U+00E9) at position 1 is not in "
                       "the vocabulary"));
  // Control characters are escaped so messages stay on one line.
  EXPECT_THAT(tok.Encode("a\nb"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "character '\\n' (U+000A) at position 1 is not in the "
                       "vocabulary"));
  EXPECT_THAT(tok.EncodeDocument("aZ"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'Z' (U+005A) at position 1")));
}

TEST(TokenizerTest, EncodeRejectsInvalidUtf8) {
  const std::vector<std::string> docs = {"abc"};
  const Tokenizer tok = Tokenizer::FromDocuments(docs);
  for (const std::string& bad :
       {std::string("ab\xFF"), std::string("ab\xC0\xAF"),
        std::string("ab\xED\xA0\x80"), std::string("ab\xE6\x97")}) {
    EXPECT_THAT(tok.Encode(bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("not valid UTF-8: invalid byte sequence at "
                                   "position 2 (byte offset 2)")));
  }
}

TEST(TokenizerTest, DecodeIgnoresBosAndOutOfRangeIds) {
  const std::vector<std::string> docs = {"ab"};
  const Tokenizer tok = Tokenizer::FromDocuments(docs);
  EXPECT_EQ(tok.Decode(tok.bos()), "");
  EXPECT_EQ(tok.Decode(-1), "");
  EXPECT_EQ(tok.Decode(100), "");
  const std::vector<int> ids = {0, 2, -5, 1, 99};
  EXPECT_EQ(tok.Decode(ids), "ab");
}

TEST(TokenizerTest, JsonRoundTrip) {
  const std::vector<std::string> docs = {"ab\"\\ \xC3\xA9\xF0\x9F\x98\x80\t"};
  const Tokenizer tok = Tokenizer::FromDocuments(docs);
  const std::string json = tok.ToJson();
  const absl::StatusOr<Tokenizer> back = Tokenizer::FromJson(json);
  ASSERT_TRUE(back.ok()) << back.status() << " for " << json;
  EXPECT_EQ(*back, tok);
  const std::vector<std::string> simple = {"ba"};
  EXPECT_EQ(Tokenizer::FromDocuments(simple).ToJson(), R"(["a","b"])");
}

TEST(TokenizerTest, FromJsonRejectsMalformedVocabularies) {
  for (const char* json :
       {"", "{}", "[", "\"a\"", "[]", "[\"ab\"]", "[\"\"]", "[1]",
        "[\"b\",\"a\"]", "[\"a\",\"a\"]", "[\"\\ud800\"]", "[null]"}) {
    EXPECT_THAT(Tokenizer::FromJson(json),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << json;
  }
}

TEST(TokenizerTest, FromCharsValidates) {
  EXPECT_TRUE(Tokenizer::FromChars({U'a', U'b', U'\U0010FFFF'}).ok());
  EXPECT_THAT(Tokenizer::FromChars({}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no")));
  EXPECT_THAT(
      Tokenizer::FromChars({U'a', 0xD800}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("U+D800")));
  EXPECT_THAT(
      Tokenizer::FromChars({U'a', 0x110000}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("U+110000")));
  EXPECT_THAT(Tokenizer::FromChars({U'b', U'a'}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("strictly increasing")));
  EXPECT_THAT(Tokenizer::FromChars({U'a', U'a'}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("strictly increasing")));
}

}  // namespace
}  // namespace microgpt
