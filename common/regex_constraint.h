// RegexConstraint: constrained generation with a PCRE2 pattern. A sample's
// generated text must match the whole pattern; each step, only the tokens
// that keep the text a possible match may be drawn. A character-level model
// makes this exact: every token is one character, so "text + c can still
// become a match" is one partial match of PCRE2 (PCRE2_PARTIAL_HARD), and
// "text is a match" one complete match. BOS (the end) is allowed exactly when
// the text so far matches.
//
// The compiled pattern is immutable and shared by the samples of a request;
// each sample has its own RegexMatcher (PCRE2's match data is per thread of
// use), which the scheduler's worker calls.
//
//   MICROGPT_ASSIGN_OR_RETURN(auto regex,
//                             RegexConstraint::Compile("[A-Z][a-z]{2,7}"));
//   RegexMatcher matcher(regex, vocabulary);   // characters by token id
//   matcher.AllowedNext(text, bos, &allowed);  // allowed[id] is 0 or 1
#ifndef MICROGPT_COMMON_REGEX_CONSTRAINT_H_
#define MICROGPT_COMMON_REGEX_CONSTRAINT_H_

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microgpt {

// Longest pattern, in bytes.
inline constexpr int kMaxRegexBytes = 1024;
// PCRE2's match limit per attempt (its default is 10,000,000): a pattern
// that backtracks catastrophically costs at most this per character
// tried, and an attempt that hits it counts as no match (the character is
// masked), so no request can make a step take seconds.
inline constexpr uint32_t kRegexMatchLimit = 100'000;

class RegexConstraint {
 public:
  // Compiles `pattern` (UTF-8, Unicode properties) to match a whole text.
  // INVALID_ARGUMENT "regex: <PCRE2's message> at offset N" for a pattern
  // PCRE2 refuses, or one longer than kMaxRegexBytes.
  static absl::StatusOr<std::shared_ptr<const RegexConstraint>> Compile(
      absl::string_view pattern);
  ~RegexConstraint();

  RegexConstraint(const RegexConstraint&) = delete;
  RegexConstraint& operator=(const RegexConstraint&) = delete;

  const std::string& pattern() const { return pattern_; }

 private:
  friend class RegexMatcher;
  RegexConstraint(std::string pattern, pcre2_code* code)
      : pattern_(std::move(pattern)), code_(code) {}

  const std::string pattern_;
  pcre2_code* const code_;
};

class RegexMatcher {
 public:
  // `vocabulary[id]` is the text of token id (one character; "" for BOS).
  RegexMatcher(std::shared_ptr<const RegexConstraint> regex,
               std::vector<std::string> vocabulary);
  ~RegexMatcher();

  RegexMatcher(const RegexMatcher&) = delete;
  RegexMatcher& operator=(const RegexMatcher&) = delete;

  // The whole text matches the pattern.
  bool Matches(absl::string_view text);
  // Some continuation of the text (in any characters) matches: the text is
  // a match or a prefix of one (the empty text always counts).
  bool Viable(absl::string_view text);
  // allowed[id] = 1 for each character whose appending keeps `text` viable,
  // and for `bos` when `text` matches; 0 otherwise. Returns how many are
  // allowed (0: no character of the vocabulary can continue the text toward
  // a match, and the text is not one).
  int AllowedNext(absl::string_view text, int bos,
                  std::vector<uint8_t>* allowed);

  // Whether some text of at most `max_length` characters of the vocabulary
  // matches, by a depth-first search of at most `budget` match attempts:
  // OK when one was found or the budget ran out first; INVALID_ARGUMENT when
  // the search proved that none exists.
  absl::Status CheckSatisfiable(int max_length, int64_t budget);

 private:
  int Match(absl::string_view text, uint32_t options);

  const std::shared_ptr<const RegexConstraint> regex_;
  const std::vector<std::string> vocabulary_;
  pcre2_match_data* const match_data_;
  pcre2_match_context* const context_;  // kRegexMatchLimit
  std::string scratch_;                 // text + one character
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_REGEX_CONSTRAINT_H_
