// RegexConstraint / RegexMatcher: PCRE2 compile errors named, the per-step
// mask of a pattern over a character vocabulary (partial matching), BOS only
// at a whole match, and the search that proves a pattern unsatisfiable.
#include "common/regex_constraint.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microgpt {
namespace {

using ::testing::HasSubstr;

// "a".."z", "A".."Z", then BOS ("").
std::vector<std::string> Letters() {
  std::vector<std::string> vocabulary;
  for (char c = 'a'; c <= 'z'; ++c) vocabulary.push_back(std::string(1, c));
  for (char c = 'A'; c <= 'Z'; ++c) vocabulary.push_back(std::string(1, c));
  vocabulary.push_back("");
  return vocabulary;
}
constexpr int kBos = 52;

// The characters a mask allows, in id order ("$" for BOS).
std::string Allowed(RegexMatcher& matcher, const std::string& text) {
  std::vector<uint8_t> allowed;
  const int count = matcher.AllowedNext(text, kBos, &allowed);
  std::string out;
  const std::vector<std::string> vocabulary = Letters();
  for (size_t id = 0; id < allowed.size(); ++id) {
    if (allowed[id]) out += id == kBos ? "$" : vocabulary[id];
  }
  EXPECT_EQ(count, static_cast<int>(out.size()));
  return out;
}

TEST(RegexConstraintTest, AMaskKeepsTheTextAPossibleWholeMatch) {
  auto regex = RegexConstraint::Compile("[A-Z][a-z]{2,4}");
  ASSERT_TRUE(regex.ok()) << regex.status();
  RegexMatcher matcher(*regex, Letters());
  EXPECT_EQ(Allowed(matcher, ""), "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  EXPECT_EQ(Allowed(matcher, "E"), "abcdefghijklmnopqrstuvwxyz");
  EXPECT_EQ(Allowed(matcher, "Em"), "abcdefghijklmnopqrstuvwxyz");
  // A whole match that can go on: letters and BOS.
  EXPECT_EQ(Allowed(matcher, "Emm"), "abcdefghijklmnopqrstuvwxyz$");
  // A whole match that cannot: only BOS.
  EXPECT_EQ(Allowed(matcher, "Emmaa"), "$");
  EXPECT_TRUE(matcher.Matches("Emma"));
  EXPECT_FALSE(matcher.Matches("Em"));
  EXPECT_FALSE(matcher.Matches("xEmma"));   // anchored at the start
  EXPECT_FALSE(matcher.Matches("Emmaaa"));  // and at the end
  EXPECT_TRUE(matcher.Viable("Em"));
  EXPECT_FALSE(matcher.Viable("em"));
}

TEST(RegexConstraintTest, AlternativesAndDeadEnds) {
  auto regex = RegexConstraint::Compile("ab|a[0-9]|cd");
  ASSERT_TRUE(regex.ok());
  RegexMatcher matcher(*regex, Letters());
  EXPECT_EQ(Allowed(matcher, ""), "ac");
  EXPECT_EQ(Allowed(matcher, "a"), "b");  // a digit would do, but none is here
  EXPECT_EQ(Allowed(matcher, "ab"), "$");
  // A text only characters outside the vocabulary continue: nothing.
  auto digits = RegexConstraint::Compile("a[0-9]");
  ASSERT_TRUE(digits.ok());
  RegexMatcher stuck(*digits, Letters());
  EXPECT_EQ(Allowed(stuck, "a"), "");
}

TEST(RegexConstraintTest, BadPatternsAreRefusedWithPcre2sMessage) {
  auto unbalanced = RegexConstraint::Compile("([a-z]");
  EXPECT_EQ(unbalanced.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unbalanced.status().message()),
              HasSubstr("regex: missing closing parenthesis at offset 6"));
  auto bad_utf8 = RegexConstraint::Compile("\xff");
  EXPECT_EQ(bad_utf8.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_utf8.status().message()), HasSubstr("UTF-8"));
  auto long_pattern = RegexConstraint::Compile(std::string(1025, 'a'));
  EXPECT_THAT(std::string(long_pattern.status().message()),
              HasSubstr("regex has 1025 bytes, more than the limit of 1024"));
}

TEST(RegexConstraintTest, TheSearchProvesAPatternUnsatisfiable) {
  auto check = [](const std::string& pattern, int max_length) {
    auto regex = RegexConstraint::Compile(pattern);
    EXPECT_TRUE(regex.ok()) << pattern;
    RegexMatcher matcher(*regex, Letters());
    return matcher.CheckSatisfiable(max_length, 2000);
  };
  EXPECT_TRUE(check("[A-Z][a-z]{2,7}", 16).ok());
  EXPECT_TRUE(check("(yes|no)", 3).ok());
  EXPECT_TRUE(check("", 0).ok());  // the empty text matches
  // Only digits, which the vocabulary lacks.
  const absl::Status digits = check("[0-9]+", 16);
  EXPECT_EQ(digits.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(digits.message()),
              HasSubstr("no text of at most 16 characters of the model's "
                        "vocabulary matches \"[0-9]+\""));
  // Longer than the sample may be.
  EXPECT_EQ(check("a{5}", 4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(check("a{5}", 5).ok());
  // A search that runs out of budget cannot tell: allowed.
  EXPECT_TRUE(check("[a-z]{500}x[0-9]", 600).ok());
}

TEST(RegexConstraintTest, CatastrophicBacktrackingIsBounded) {
  auto regex = RegexConstraint::Compile("(a|aa)*(a|aa)*(a|aa)*c");
  ASSERT_TRUE(regex.ok());
  RegexMatcher matcher(*regex, Letters());
  // Without a limit this is about 3^20 steps per attempt; with it, each
  // attempt stops at the limit and counts as no match.
  const std::string text(60, 'a');
  std::vector<uint8_t> allowed;
  matcher.AllowedNext(text, kBos, &allowed);
  EXPECT_FALSE(matcher.Matches(text + "b"));
}

}  // namespace
}  // namespace microgpt
