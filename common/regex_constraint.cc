#include "common/regex_constraint.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace microgpt {
namespace {

std::string ErrorMessage(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  return n < 0 ? absl::StrCat("PCRE2 error ", code)
               : std::string(reinterpret_cast<const char*>(buffer), n);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const RegexConstraint>> RegexConstraint::Compile(
    absl::string_view pattern) {
  if (pattern.size() > static_cast<size_t>(kMaxRegexBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("regex has ", pattern.size(),
                     " bytes, more than the limit of ", kMaxRegexBytes));
  }
  // PCRE2_UTF checks the pattern's UTF-8 too.
  constexpr uint32_t kOptions = PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED;
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()),
                    pattern.size(), kOptions, &error, &offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("regex: ", ErrorMessage(error), " at offset ", offset));
  }
  pcre2_code_free(code);
  // Anchored at both ends: the whole text must match. PCRE2_ENDANCHORED
  // would say so, but partial matching refuses it (PCRE2_ERROR_BADOPTION),
  // so the end is \z, after the pattern as a group.
  const std::string whole = absl::StrCat("(?:", pattern, ")\\z");
  code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(whole.data()), whole.size(),
                       kOptions, &error, &offset, nullptr);
  if (code == nullptr) {
    // Only a (?x) comment left open at the end swallows the group's close.
    return absl::InvalidArgumentError(
        absl::StrCat("regex: ", ErrorMessage(error),
                     " (end a # comment of an extended pattern with a "
                     "newline)"));
  }
  // The JIT, where the machine has one, for complete and partial matching;
  // without it pcre2_match interprets (same results).
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
  return std::shared_ptr<const RegexConstraint>(
      new RegexConstraint(std::string(pattern), code));
}

RegexConstraint::~RegexConstraint() { pcre2_code_free(code_); }

RegexMatcher::RegexMatcher(std::shared_ptr<const RegexConstraint> regex,
                           std::vector<std::string> vocabulary)
    : regex_(std::move(regex)),
      vocabulary_(std::move(vocabulary)),
      match_data_(pcre2_match_data_create_from_pattern(regex_->code_, nullptr)),
      context_(pcre2_match_context_create(nullptr)) {
  pcre2_set_match_limit(context_, kRegexMatchLimit);
}

RegexMatcher::~RegexMatcher() {
  pcre2_match_context_free(context_);
  pcre2_match_data_free(match_data_);
}

int RegexMatcher::Match(absl::string_view text, uint32_t options) {
  // The texts are the model's own characters, valid UTF-8: no need for
  // PCRE2 to check them each time.
  return pcre2_match(regex_->code_, reinterpret_cast<PCRE2_SPTR>(text.data()),
                     text.size(), 0, options | PCRE2_NO_UTF_CHECK, match_data_,
                     context_);
}

bool RegexMatcher::Matches(absl::string_view text) {
  return Match(text, 0) >= 0;
}

// PARTIAL_HARD reports a partial match whenever the end of the text is
// reached with the pattern wanting more, even after a complete match, so a
// complete match it returns cannot be extended; both are viable. PCRE2
// reports no partial match of an empty text: the empty text counts as
// viable.
bool RegexMatcher::Viable(absl::string_view text) {
  if (text.empty()) return true;
  const int rc = Match(text, PCRE2_PARTIAL_HARD);
  return rc >= 0 || rc == PCRE2_ERROR_PARTIAL;
}

int RegexMatcher::AllowedNext(absl::string_view text, int bos,
                              std::vector<uint8_t>* allowed) {
  allowed->assign(vocabulary_.size(), 0);
  int count = 0;
  scratch_.assign(text.data(), text.size());
  for (size_t id = 0; id < vocabulary_.size(); ++id) {
    if (static_cast<int>(id) == bos) continue;
    scratch_.resize(text.size());
    scratch_.append(vocabulary_[id]);
    if (Viable(scratch_)) {
      (*allowed)[id] = 1;
      ++count;
    }
  }
  if (bos >= 0 && static_cast<size_t>(bos) < vocabulary_.size() &&
      Matches(text)) {
    (*allowed)[bos] = 1;
    ++count;
  }
  return count;
}

absl::Status RegexMatcher::CheckSatisfiable(int max_length, int64_t budget) {
  // Depth first, characters in id order; `attempts` counts match calls.
  int64_t attempts = 0;
  bool exhausted = false;
  std::string text;
  auto search = [&](auto&& self, int depth) -> bool {
    if (++attempts > budget) {
      exhausted = true;
      return false;
    }
    if (Matches(text)) return true;
    if (depth == max_length) return false;
    for (const std::string& c : vocabulary_) {
      if (c.empty() || exhausted) continue;
      text.append(c);
      ++attempts;
      const bool found = Viable(text) && self(self, depth + 1);
      text.resize(text.size() - c.size());
      if (found) return true;
    }
    return false;
  };
  if (search(search, 0) || exhausted) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("regex: no text of at most ", max_length,
                   " characters of the model's vocabulary matches \"",
                   regex_->pattern(), "\""));
}

}  // namespace microgpt
