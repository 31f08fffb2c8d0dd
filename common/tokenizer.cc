#include "common/tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/utf8.h"
#include "nlohmann/json.hpp"

namespace microgpt {
namespace {

// A character as error messages show it: itself, or a C-style escape for
// control characters so that messages stay on one line.
std::string Printable(char32_t c) {
  switch (c) {
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    default:
      break;
  }
  if (c < 0x20 || c == 0x7F) {
    return absl::StrFormat("\\x%02X", static_cast<uint32_t>(c));
  }
  if (c >= 0x80 && c < 0xA0) {
    return absl::StrFormat("\\u%04X", static_cast<uint32_t>(c));
  }
  return EncodeUtf8(c);
}

}  // namespace

std::string CharacterName(char32_t c) {
  return absl::StrCat("'", Printable(c), "' (", CodePointName(c), ")");
}

Tokenizer::Tokenizer(std::vector<char32_t> chars) : chars_(std::move(chars)) {
  utf8_.reserve(chars_.size());
  for (char32_t c : chars_) utf8_.push_back(EncodeUtf8(c));
}

Tokenizer Tokenizer::FromDocuments(absl::Span<const std::string> documents) {
  // One bit per code point: a dataset of any size needs 136 KiB here.
  std::vector<bool> seen(kMaxCodePoint + 1, false);
  for (const std::string& document : documents) {
    absl::string_view rest = document;
    while (!rest.empty()) {
      char32_t c;
      const int n = DecodeUtf8Char(rest, &c);
      if (n == 0) {  // not valid UTF-8, against the contract: skip the byte
        rest.remove_prefix(1);
        continue;
      }
      seen[c] = true;
      rest.remove_prefix(n);
    }
  }
  std::vector<char32_t> chars;
  for (char32_t c = 0; c <= kMaxCodePoint; ++c) {
    if (seen[c]) chars.push_back(c);
  }
  return Tokenizer(std::move(chars));
}

absl::StatusOr<Tokenizer> Tokenizer::FromChars(std::vector<char32_t> chars) {
  if (chars.empty()) {
    return absl::InvalidArgumentError("the vocabulary has no characters");
  }
  for (size_t i = 0; i < chars.size(); ++i) {
    if (!IsScalarValue(chars[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("vocabulary entry ", i, " (", CodePointName(chars[i]),
                       ") is not a valid Unicode character"));
    }
    if (i > 0 && chars[i] <= chars[i - 1]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the vocabulary is not strictly increasing at entry ", i, " (",
          CodePointName(chars[i - 1]), " then ", CodePointName(chars[i]), ")"));
    }
  }
  return Tokenizer(std::move(chars));
}

absl::StatusOr<std::vector<int>> Tokenizer::Encode(
    absl::string_view text) const {
  std::vector<int> ids;
  ids.reserve(text.size());
  size_t byte_offset = 0;
  // Positions count characters (code points) from 0.
  for (size_t position = 0; byte_offset < text.size(); ++position) {
    char32_t c;
    const int n = DecodeUtf8Char(text.substr(byte_offset), &c);
    if (n == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("text is not valid UTF-8: invalid byte sequence at "
                       "position ",
                       position, " (byte offset ", byte_offset, ")"));
    }
    const auto it = std::lower_bound(chars_.begin(), chars_.end(), c);
    if (it == chars_.end() || *it != c) {
      return absl::InvalidArgumentError(
          absl::StrCat("character ", CharacterName(c), " at position ",
                       position, " is not in the vocabulary"));
    }
    ids.push_back(static_cast<int>(it - chars_.begin()));
    byte_offset += n;
  }
  return ids;
}

absl::StatusOr<std::vector<int>> Tokenizer::EncodeDocument(
    absl::string_view text) const {
  absl::StatusOr<std::vector<int>> chars = Encode(text);
  if (!chars.ok()) return chars.status();
  std::vector<int> ids;
  ids.reserve(chars->size() + 2);
  ids.push_back(bos());
  ids.insert(ids.end(), chars->begin(), chars->end());
  ids.push_back(bos());
  return ids;
}

std::vector<std::string> Tokenizer::Texts() const {
  std::vector<std::string> texts;
  texts.reserve(vocab_size());
  for (int id = 0; id < vocab_size(); ++id) texts.push_back(Decode(id));
  return texts;
}

std::string Tokenizer::Decode(int id) const {
  if (id < 0 || id >= static_cast<int>(utf8_.size())) return "";
  return utf8_[id];
}

std::string Tokenizer::Decode(absl::Span<const int> ids) const {
  std::string text;
  for (int id : ids) {
    if (id >= 0 && id < static_cast<int>(utf8_.size())) text += utf8_[id];
  }
  return text;
}

std::string Tokenizer::ToJson() const {
  nlohmann::json array = nlohmann::json::array();
  for (const std::string& c : utf8_) array.push_back(c);
  // Every entry is valid UTF-8; `replace` only keeps dump() from ever throwing.
  return array.dump(-1, ' ', /*ensure_ascii=*/false,
                    nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<Tokenizer> Tokenizer::FromJson(absl::string_view json) {
  const nlohmann::json array =
      nlohmann::json::parse(json.begin(), json.end(), nullptr,
                            /*allow_exceptions=*/false);
  if (!array.is_array()) {
    return absl::InvalidArgumentError(
        "the vocabulary is not a JSON array of strings");
  }
  std::vector<char32_t> chars;
  chars.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    const nlohmann::json& entry = array[i];
    const std::string* s =
        entry.is_string() ? entry.get_ptr<const std::string*>() : nullptr;
    char32_t c;
    if (s == nullptr || s->empty() ||
        DecodeUtf8Char(*s, &c) != static_cast<int>(s->size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "vocabulary entry ", i, " is not a one-character string"));
    }
    chars.push_back(c);
  }
  return FromChars(std::move(chars));
}

}  // namespace microgpt
