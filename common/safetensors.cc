#include "common/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/utf8.h"
#include "nlohmann/json.hpp"

namespace microgpt {
namespace {

constexpr bool kLittleEndianHost = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

struct DtypeInfo {
  Dtype dtype;
  absl::string_view name;
  size_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {Dtype::kBool, "BOOL", 1},      {Dtype::kU8, "U8", 1},
    {Dtype::kI8, "I8", 1},          {Dtype::kF8E5M2, "F8_E5M2", 1},
    {Dtype::kF8E4M3, "F8_E4M3", 1}, {Dtype::kI16, "I16", 2},
    {Dtype::kU16, "U16", 2},        {Dtype::kF16, "F16", 2},
    {Dtype::kBF16, "BF16", 2},      {Dtype::kI32, "I32", 4},
    {Dtype::kU32, "U32", 4},        {Dtype::kF32, "F32", 4},
    {Dtype::kF64, "F64", 8},        {Dtype::kI64, "I64", 8},
    {Dtype::kU64, "U64", 8},
};

const DtypeInfo& Info(Dtype dtype) {
  for (const DtypeInfo& info : kDtypes) {
    if (info.dtype == dtype) return info;
  }
  return kDtypes[0];  // unreachable for a valid enumerator
}

// The deepest valid header: top object > tensor object > shape array.
constexpr int kMaxHeaderDepth = 3;

// A name as error messages show it: quoted, escaped, at most 80 bytes.
std::string Quote(absl::string_view name) {
  constexpr size_t kMaxShown = 80;
  if (name.size() > kMaxShown) {
    return absl::StrCat(
        "\"", absl::Utf8SafeCHexEscape(name.substr(0, kMaxShown)), "\"...");
  }
  return absl::StrCat("\"", absl::Utf8SafeCHexEscape(name), "\"");
}

absl::Status Corrupt(absl::string_view message) {
  return absl::DataLossError(
      absl::StrCat("not a valid safetensors file: ", message));
}

// The nesting depth of JSON text, not counting brackets inside strings. It
// bounds the memory a hostile header can make the DOM parser spend.
int JsonDepth(absl::string_view json) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : json) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > kMaxHeaderDepth) return max_depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

// Elements of `shape` (all >= 0) times `element_size`; false on overflow.
bool ByteSize(absl::Span<const int64_t> shape, size_t element_size,
              uint64_t* bytes) {
  uint64_t n = element_size;
  for (int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(dim), &n)) {
      return false;
    }
  }
  *bytes = n;
  return true;
}

// A non-negative integer of the header.
bool GetUnsigned(const nlohmann::json& value, uint64_t* out) {
  if (!value.is_number_unsigned()) return false;
  *out = value.get<uint64_t>();
  return true;
}

absl::StatusOr<SafetensorsTensor> ParseTensorInfo(const std::string& name,
                                                  const nlohmann::json& info,
                                                  uint64_t buffer_size,
                                                  uint64_t* begin,
                                                  uint64_t* end) {
  const std::string quoted = Quote(name);
  if (name.empty()) return Corrupt("a tensor has an empty name");
  if (!info.is_object()) {
    return Corrupt(absl::StrCat("tensor ", quoted, " is not a JSON object"));
  }
  for (const auto& field : info.items()) {
    if (field.key() != "dtype" && field.key() != "shape" &&
        field.key() != "data_offsets") {
      return Corrupt(absl::StrCat("tensor ", quoted, " has an unknown field ",
                                  Quote(field.key())));
    }
  }
  SafetensorsTensor tensor;
  tensor.name = name;

  const auto dtype = info.find("dtype");
  if (dtype == info.end() || !dtype->is_string()) {
    return Corrupt(absl::StrCat("tensor ", quoted, " has no string \"dtype\""));
  }
  const std::string& dtype_name = *dtype->get_ptr<const std::string*>();
  if (!ParseDtype(dtype_name, &tensor.dtype)) {
    return Corrupt(absl::StrCat("tensor ", quoted, " has an unknown dtype ",
                                Quote(dtype_name)));
  }

  const auto shape = info.find("shape");
  if (shape == info.end() || !shape->is_array()) {
    return Corrupt(absl::StrCat("tensor ", quoted, " has no \"shape\" array"));
  }
  tensor.shape.reserve(shape->size());
  for (const nlohmann::json& dim : *shape) {
    uint64_t value;
    if (!GetUnsigned(dim, &value) ||
        value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Corrupt(absl::StrCat("tensor ", quoted,
                                  " has a shape entry that is not a "
                                  "non-negative integer"));
    }
    tensor.shape.push_back(static_cast<int64_t>(value));
  }

  const auto offsets = info.find("data_offsets");
  if (offsets == info.end() || !offsets->is_array() || offsets->size() != 2 ||
      !GetUnsigned((*offsets)[0], begin) || !GetUnsigned((*offsets)[1], end)) {
    return Corrupt(
        absl::StrCat("tensor ", quoted,
                     " needs \"data_offsets\" of two non-negative integers"));
  }
  if (*begin > *end || *end > buffer_size) {
    return Corrupt(absl::StrCat(
        "tensor ", quoted, " has data_offsets [", *begin, ", ", *end,
        "] outside the data buffer of ", buffer_size, " bytes"));
  }
  uint64_t bytes;
  if (!ByteSize(tensor.shape, DtypeSize(tensor.dtype), &bytes) ||
      bytes != *end - *begin) {
    return Corrupt(absl::StrCat("tensor ", quoted, " has ", *end - *begin,
                                " bytes of data, which does not match its "
                                "dtype and shape"));
  }
  return tensor;
}

// The header length in the first 8 bytes of a file of `file_size` bytes,
// checked against the limit and the file's size.
absl::StatusOr<uint64_t> HeaderSize(const char* first8, uint64_t file_size,
                                    uint64_t max_header_bytes) {
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) {
    header_size = (header_size << 8) | static_cast<uint8_t>(first8[i]);
  }
  if (header_size > max_header_bytes) {
    return Corrupt(absl::StrCat("the header length ", header_size,
                                " is above the limit of ", max_header_bytes,
                                " bytes"));
  }
  if (header_size > file_size - 8) {
    return Corrupt(absl::StrCat("the header length ", header_size,
                                " runs past the end of the file (", file_size,
                                " bytes)"));
  }
  return header_size;
}

// The header's JSON object: not too deep, no key twice.
absl::StatusOr<nlohmann::json> ParseHeaderJson(absl::string_view header_text) {
  if (JsonDepth(header_text) > kMaxHeaderDepth) {
    return Corrupt("the header nests deeper than a safetensors header can");
  }
  // nlohmann keeps the last of duplicate keys; catch them on the way.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool has_duplicate = false;
  const nlohmann::json::parser_callback_t on_event =
      [&](int /*depth*/, nlohmann::json::parse_event_t event,
          nlohmann::json& parsed) {
        switch (event) {
          case nlohmann::json::parse_event_t::object_start:
            open_objects.emplace_back();
            break;
          case nlohmann::json::parse_event_t::object_end:
            if (!open_objects.empty()) open_objects.pop_back();
            break;
          case nlohmann::json::parse_event_t::key:
            if (!open_objects.empty() && parsed.is_string() &&
                !open_objects.back()
                     .insert(*parsed.get_ptr<const std::string*>())
                     .second &&
                !has_duplicate) {
              has_duplicate = true;
              duplicate = *parsed.get_ptr<const std::string*>();
            }
            break;
          default:
            break;
        }
        return true;
      };
  const nlohmann::json header =
      nlohmann::json::parse(header_text.begin(), header_text.end(), on_event,
                            /*allow_exceptions=*/false);
  if (header.is_discarded()) return Corrupt("the header is not valid JSON");
  if (has_duplicate) {
    return Corrupt(
        absl::StrCat("the header has the key ", Quote(duplicate), " twice"));
  }
  if (!header.is_object()) return Corrupt("the header is not a JSON object");
  return header;
}

// The "__metadata__" entry's strings into `metadata`.
absl::Status ParseMetadata(const nlohmann::json& value,
                           std::map<std::string, std::string>* metadata) {
  if (!value.is_object()) {
    return Corrupt("\"__metadata__\" is not a JSON object");
  }
  for (const auto& entry : value.items()) {
    if (!entry.value().is_string()) {
      return Corrupt(absl::StrCat("metadata entry ", Quote(entry.key()),
                                  " is not a string"));
    }
    metadata->emplace(entry.key(),
                      *entry.value().get_ptr<const std::string*>());
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view DtypeName(Dtype dtype) { return Info(dtype).name; }

size_t DtypeSize(Dtype dtype) { return Info(dtype).size; }

bool ParseDtype(absl::string_view name, Dtype* dtype) {
  for (const DtypeInfo& info : kDtypes) {
    if (info.name == name) {
      *dtype = info.dtype;
      return true;
    }
  }
  return false;
}

const SafetensorsTensor* SafetensorsFile::Find(absl::string_view name) const {
  const auto it =
      std::lower_bound(tensors.begin(), tensors.end(), name,
                       [](const SafetensorsTensor& t, absl::string_view n) {
                         return t.name < n;
                       });
  if (it == tensors.end() || it->name != name) return nullptr;
  return &*it;
}

const std::string* SafetensorsFile::FindMetadata(absl::string_view key) const {
  const auto it = metadata.find(std::string(key));
  return it == metadata.end() ? nullptr : &it->second;
}

absl::StatusOr<SafetensorsFile> ParseSafetensors(absl::string_view bytes,
                                                 uint64_t max_header_bytes) {
  if (bytes.size() < 8) {
    return Corrupt(absl::StrCat("the file has ", bytes.size(),
                                " bytes, fewer than the 8 of its header "
                                "length"));
  }
  absl::StatusOr<uint64_t> size =
      HeaderSize(bytes.data(), bytes.size(), max_header_bytes);
  if (!size.ok()) return size.status();
  const uint64_t header_size = *size;
  const absl::string_view header_text = bytes.substr(8, header_size);
  const absl::string_view buffer = bytes.substr(8 + header_size);

  absl::StatusOr<nlohmann::json> parsed = ParseHeaderJson(header_text);
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& header = *parsed;

  SafetensorsFile file;
  struct Extent {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Extent> extents;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") {
      if (absl::Status status = ParseMetadata(item.value(), &file.metadata);
          !status.ok()) {
        return status;
      }
      continue;
    }
    Extent extent;
    absl::StatusOr<SafetensorsTensor> tensor = ParseTensorInfo(
        item.key(), item.value(), buffer.size(), &extent.begin, &extent.end);
    if (!tensor.ok()) return tensor.status();
    tensor->data = buffer.substr(extent.begin, extent.end - extent.begin);
    extent.index = file.tensors.size();
    extents.push_back(extent);
    file.tensors.push_back(*std::move(tensor));
  }

  // The tensors must tile the buffer: no gap, no overlap, nothing left over.
  std::sort(extents.begin(), extents.end(),
            [](const Extent& a, const Extent& b) {
              return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
            });
  uint64_t covered = 0;
  for (const Extent& extent : extents) {
    if (extent.begin != covered) {
      return Corrupt(
          absl::StrCat("tensor ", Quote(file.tensors[extent.index].name),
                       extent.begin < covered ? " overlaps another tensor"
                                              : " leaves a gap before its data",
                       " (data_offsets start at ", extent.begin, ", expected ",
                       covered, ")"));
    }
    covered = extent.end;
  }
  if (covered != buffer.size()) {
    return Corrupt(absl::StrCat("the tensors cover ", covered, " of the ",
                                buffer.size(), " bytes of the data buffer"));
  }
  // header.items() iterates in key order, so file.tensors is sorted by name.
  return file;
}

absl::StatusOr<std::map<std::string, std::string>> ReadSafetensorsMetadata(
    const std::string& path, uint64_t max_header_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  const auto file_size = static_cast<uint64_t>(in.tellg());
  const auto in_file = [&](const absl::Status& status) {
    return absl::Status(status.code(),
                        absl::StrCat(path, ": ", status.message()));
  };
  char first8[8];
  in.seekg(0);
  if (file_size < 8 || !in.read(first8, sizeof(first8))) {
    return in_file(Corrupt(absl::StrCat("the file has ", file_size,
                                        " bytes, fewer than the 8 of its "
                                        "header length")));
  }
  absl::StatusOr<uint64_t> size =
      HeaderSize(first8, file_size, max_header_bytes);
  if (!size.ok()) return in_file(size.status());
  std::string header_text(*size, '\0');
  if (!in.read(header_text.data(), static_cast<std::streamsize>(*size))) {
    return in_file(Corrupt("the header cannot be read"));
  }
  absl::StatusOr<nlohmann::json> header = ParseHeaderJson(header_text);
  if (!header.ok()) return in_file(header.status());
  std::map<std::string, std::string> metadata;
  const auto entry = header->find("__metadata__");
  if (entry != header->end()) {
    if (absl::Status status = ParseMetadata(*entry, &metadata); !status.ok()) {
      return in_file(status);
    }
  }
  return metadata;
}

void DecodeF32(absl::string_view bytes, float* out) {
  const size_t n = bytes.size() / 4;
  if (n == 0) return;  // `out` may be null then
  if constexpr (kLittleEndianHost) {
    std::memcpy(out, bytes.data(), n * 4);
  } else {
    for (size_t i = 0; i < n; ++i) {
      uint32_t word = 0;
      for (int b = 3; b >= 0; --b) {
        word = (word << 8) | static_cast<uint8_t>(bytes[4 * i + b]);
      }
      std::memcpy(&out[i], &word, 4);
    }
  }
}

void DecodeI32(absl::string_view bytes, int32_t* out) {
  static_assert(sizeof(float) == sizeof(int32_t));
  const size_t n = bytes.size() / 4;
  if (n == 0) return;  // `out` may be null then
  if constexpr (kLittleEndianHost) {
    std::memcpy(out, bytes.data(), n * 4);
  } else {
    for (size_t i = 0; i < n; ++i) {
      uint32_t word = 0;
      for (int b = 3; b >= 0; --b) {
        word = (word << 8) | static_cast<uint8_t>(bytes[4 * i + b]);
      }
      std::memcpy(&out[i], &word, 4);
    }
  }
}

absl::Status SafetensorsWriter::AddTensor(
    absl::string_view name, Dtype dtype, std::vector<int64_t> shape,
    absl::string_view little_endian_data) {
  if (name.empty() || name == "__metadata__" || !IsValidUtf8(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid tensor name ", Quote(name)));
  }
  if (names_.count(std::string(name)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Quote(name), " is added twice"));
  }
  uint64_t bytes;
  if (!ByteSize(shape, DtypeSize(dtype), &bytes) ||
      bytes != little_endian_data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", Quote(name), " has ", little_endian_data.size(),
        " bytes of data, which does not match its dtype and shape"));
  }
  names_.emplace(name);
  tensors_.push_back(
      {std::string(name), dtype, std::move(shape), little_endian_data});
  return absl::OkStatus();
}

absl::string_view SafetensorsWriter::LittleEndianWords(absl::string_view data) {
  if constexpr (kLittleEndianHost) return data;
  std::string& swapped = owned_.emplace_back(data);
  for (size_t i = 0; i + 4 <= swapped.size(); i += 4) {
    std::swap(swapped[i], swapped[i + 3]);
    std::swap(swapped[i + 1], swapped[i + 2]);
  }
  return swapped;
}

absl::Status SafetensorsWriter::AddF32(absl::string_view name,
                                       std::vector<int64_t> shape,
                                       absl::Span<const float> values) {
  const absl::string_view data(reinterpret_cast<const char*>(values.data()),
                               values.size() * sizeof(float));
  return AddTensor(name, Dtype::kF32, std::move(shape),
                   LittleEndianWords(data));
}

absl::Status SafetensorsWriter::AddI32(absl::string_view name,
                                       std::vector<int64_t> shape,
                                       absl::Span<const int32_t> values) {
  const absl::string_view data(reinterpret_cast<const char*>(values.data()),
                               values.size() * sizeof(int32_t));
  return AddTensor(name, Dtype::kI32, std::move(shape),
                   LittleEndianWords(data));
}

absl::Status SafetensorsWriter::AddMetadata(absl::string_view key,
                                            absl::string_view value) {
  if (!IsValidUtf8(key) || !IsValidUtf8(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata entry ", Quote(key), " is not valid UTF-8"));
  }
  if (!metadata_.emplace(key, value).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata entry ", Quote(key), " is added twice"));
  }
  return absl::OkStatus();
}

std::string SafetensorsWriter::Serialize() const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json& metadata = header["__metadata__"];
    metadata = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata_) metadata[key] = value;
  }
  uint64_t offset = 0;
  for (const Entry& tensor : tensors_) {
    const uint64_t end = offset + tensor.data.size();
    header[tensor.name] = {
        {"dtype", std::string(DtypeName(tensor.dtype))},
        {"shape", tensor.shape},
        {"data_offsets", {offset, end}},
    };
    offset = end;
  }
  // Names and metadata were checked to be UTF-8; `replace` only guarantees
  // that dump() cannot throw.
  std::string json =
      header.dump(-1, ' ', /*ensure_ascii=*/false,
                  nlohmann::ordered_json::error_handler_t::replace);
  json.append((8 - json.size() % 8) % 8, ' ');  // 8 + N is a multiple of 8

  std::string file;
  file.reserve(8 + json.size() + offset);
  for (int i = 0; i < 8; ++i) {
    file.push_back(
        static_cast<char>((uint64_t{json.size()} >> (8 * i)) & 0xFF));
  }
  file += json;
  for (const Entry& tensor : tensors_) {
    if (!tensor.data.empty())
      file.append(tensor.data.data(), tensor.data.size());
  }
  return file;
}

}  // namespace microgpt
