// UTF-8: strict decoding and encoding of Unicode scalar values.
//
// "Strict" means what RFC 3629 allows and nothing more: no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no stray continuation
// bytes and no truncated sequences.
//
//   char32_t c;
//   int n = DecodeUtf8Char("\xC3\xA9t\xC3\xA9", &c);  // n == 2, c == U+00E9
//   std::string s = EncodeUtf8(U'\u65E5');            // "\xE6\x97\xA5" ("日")
#ifndef MICROGPT_COMMON_UTF8_H_
#define MICROGPT_COMMON_UTF8_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microgpt {

// The largest Unicode code point.
inline constexpr char32_t kMaxCodePoint = 0x10FFFF;

// True for Unicode scalar values: at most U+10FFFF and not a surrogate.
inline bool IsScalarValue(char32_t c) {
  return c <= kMaxCodePoint && !(c >= 0xD800 && c <= 0xDFFF);
}

// Decodes the character at the start of `text` into `*c`. Returns the number
// of bytes it takes (1 to 4), or 0 when `text` is empty or does not start with
// a valid UTF-8 sequence (then `*c` is left unspecified).
int DecodeUtf8Char(absl::string_view text, char32_t* c);

// Byte offset of the first invalid sequence of `text`, or `text.size()` when
// the whole text is valid UTF-8.
size_t FindInvalidUtf8(absl::string_view text);
inline bool IsValidUtf8(absl::string_view text) {
  return FindInvalidUtf8(text) == text.size();
}

// The code points of `text`. INVALID_ARGUMENT naming the byte offset when it
// is not valid UTF-8: "invalid UTF-8 at byte offset 3".
absl::StatusOr<std::vector<char32_t>> DecodeUtf8(absl::string_view text);

// Appends the UTF-8 encoding of `c`; a `c` that is not a scalar value is
// replaced by U+FFFD so the output is always valid UTF-8.
void AppendUtf8(char32_t c, std::string* out);
std::string EncodeUtf8(char32_t c);

// "U+005A", "U+1F600": the conventional name of a code point.
std::string CodePointName(char32_t c);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_UTF8_H_
