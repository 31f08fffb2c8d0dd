// The safetensors file format (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  N, the header length, a little-endian uint64
//   [N bytes]  a JSON object, space-padded so the buffer starts 8-byte aligned:
//              {"__metadata__": {"key": "value", ...},
//               "wte": {"dtype": "F32", "shape": [27, 16],
//                       "data_offsets": [0, 1728]}, ...}
//   [rest]     the byte buffer; offsets are relative to its start and tensor
//              data is row-major little-endian
//
// The writer produces exactly that. The reader is strict, for files may come
// from anywhere: the header must fit the file and a size limit, be valid JSON
// without duplicate keys or unknown fields, name known dtypes, and every
// tensor's bytes must match its shape and dtype; the tensors must cover the
// buffer exactly, without gaps or overlaps. Anything else is DATA_LOSS, never
// a crash.
//
//   SafetensorsWriter writer;
//   MICROGPT_RETURN_IF_ERROR(writer.AddF32("wte", {27, 16}, weights));
//   MICROGPT_RETURN_IF_ERROR(writer.AddMetadata("microgpt.step", "1000"));
//   std::string bytes = writer.Serialize();
//
//   MICROGPT_ASSIGN_OR_RETURN(SafetensorsFile file, ParseSafetensors(bytes));
//   const SafetensorsTensor* wte = file.Find("wte");
#ifndef MICROGPT_COMMON_SAFETENSORS_H_
#define MICROGPT_COMMON_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace microgpt {

// The element types of the format.
enum class Dtype {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
};

// "F32", "I32", ...: the name of a dtype in headers.
absl::string_view DtypeName(Dtype dtype);
// Bytes per element.
size_t DtypeSize(Dtype dtype);
// False when `name` is not a dtype of the format.
bool ParseDtype(absl::string_view name, Dtype* dtype);

// Default upper bound on the JSON header (the reference implementation's).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = uint64_t{100} << 20;

// One tensor of a parsed file. `data` points into the parsed bytes.
struct SafetensorsTensor {
  std::string name;
  Dtype dtype;
  std::vector<int64_t> shape;
  absl::string_view data;  // little-endian, row-major
};

struct SafetensorsFile {
  std::vector<SafetensorsTensor> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;

  // nullptr when there is no tensor or metadata entry of that name.
  const SafetensorsTensor* Find(absl::string_view name) const;
  const std::string* FindMetadata(absl::string_view key) const;
};

// Parses and validates a whole file. The result's tensors point into `bytes`,
// which must outlive it. DATA_LOSS, naming the problem, for anything that is
// not a well-formed file or has a header above `max_header_bytes`.
absl::StatusOr<SafetensorsFile> ParseSafetensors(
    absl::string_view bytes,
    uint64_t max_header_bytes = kMaxSafetensorsHeaderBytes);

// The "__metadata__" of the safetensors file at `path`, reading only its
// header (what listing versions needs; the tensors are neither read nor
// checked). NOT_FOUND when the file cannot be opened, DATA_LOSS naming the
// file for a malformed header.
absl::StatusOr<std::map<std::string, std::string>> ReadSafetensorsMetadata(
    const std::string& path,
    uint64_t max_header_bytes = kMaxSafetensorsHeaderBytes);

// Host values from little-endian tensor data: out[i] for i < bytes.size() / 4.
void DecodeF32(absl::string_view bytes, float* out);
void DecodeI32(absl::string_view bytes, int32_t* out);

// Builds a file. The data passed to AddTensor must stay alive until
// Serialize() (AddF32 and AddI32 may keep a pointer to their values too).
class SafetensorsWriter {
 public:
  // INVALID_ARGUMENT when the name is empty, "__metadata__", not UTF-8 or
  // already used, a dimension is negative, or the data's size is not the
  // product of the shape times the dtype's size.
  absl::Status AddTensor(absl::string_view name, Dtype dtype,
                         std::vector<int64_t> shape,
                         absl::string_view little_endian_data);
  absl::Status AddF32(absl::string_view name, std::vector<int64_t> shape,
                      absl::Span<const float> values);
  absl::Status AddI32(absl::string_view name, std::vector<int64_t> shape,
                      absl::Span<const int32_t> values);
  // INVALID_ARGUMENT when the key or value is not valid UTF-8 or the key is
  // already used.
  absl::Status AddMetadata(absl::string_view key, absl::string_view value);

  // The file: tensors in the order they were added.
  std::string Serialize() const;

 private:
  // `data` (4-byte words in host order) as little-endian bytes: itself on a
  // little-endian host, else a byte-swapped copy kept in owned_.
  absl::string_view LittleEndianWords(absl::string_view data);

  struct Entry {
    std::string name;
    Dtype dtype;
    std::vector<int64_t> shape;
    absl::string_view data;
  };
  std::vector<Entry> tensors_;
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
  std::deque<std::string> owned_;  // byte-swapped copies on big-endian hosts
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_SAFETENSORS_H_
