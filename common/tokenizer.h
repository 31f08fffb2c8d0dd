// Tokenizer: characters (Unicode code points) to ids and back.
// The vocabulary is the sorted set of distinct code points of a dataset, ids
// 0..n-1 in that order, plus BOS with id n, which both starts and ends a
// document: EncodeDocument("emma") = [BOS, e, m, m, a, BOS].
#ifndef MICROGPT_COMMON_TOKENIZER_H_
#define MICROGPT_COMMON_TOKENIZER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace microgpt {

// A character as errors name it, escaped when it does not print:
// "'Z' (U+005A)", "'\\n' (U+000A)".
std::string CharacterName(char32_t c);

class Tokenizer {
 public:
  // The vocabulary of a set of documents (each valid UTF-8).
  static Tokenizer FromDocuments(absl::Span<const std::string> documents);
  // From a stored vocabulary; INVALID_ARGUMENT unless strictly increasing
  // valid code points (not surrogates, at most U+10FFFF), at least one.
  static absl::StatusOr<Tokenizer> FromChars(std::vector<char32_t> chars);

  int vocab_size() const { return static_cast<int>(chars_.size()) + 1; }
  int bos() const { return static_cast<int>(chars_.size()); }
  // The characters in id order, BOS not included.
  const std::vector<char32_t>& chars() const { return chars_; }

  // Ids of the characters of `text`, no BOS. INVALID_ARGUMENT for invalid
  // UTF-8 or a character outside the vocabulary, naming the character and its
  // position: "character 'Z' (U+005A) at position 3 is not in the vocabulary".
  absl::StatusOr<std::vector<int>> Encode(absl::string_view text) const;
  // [BOS] + Encode(text) + [BOS].
  absl::StatusOr<std::vector<int>> EncodeDocument(absl::string_view text) const;
  // UTF-8 of one id; BOS and out-of-range ids decode to "".
  std::string Decode(int id) const;
  std::string Decode(absl::Span<const int> ids) const;
  // Every token's text by id, BOS's ("") last.
  std::vector<std::string> Texts() const;

  // The vocabulary as a JSON array of one-character strings, in id order:
  // ["a","b",...]. FromJson reads it back.
  std::string ToJson() const;
  static absl::StatusOr<Tokenizer> FromJson(absl::string_view json);

  friend bool operator==(const Tokenizer& a, const Tokenizer& b) {
    return a.chars_ == b.chars_;
  }

 private:
  explicit Tokenizer(std::vector<char32_t> chars);

  std::vector<char32_t> chars_;
  std::vector<std::string> utf8_;  // utf8_[id] for each character id
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_TOKENIZER_H_
