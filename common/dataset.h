// Datasets, in one of two formats (docs/model.md):
// - documents: a text file of documents, one per line. Surrounding
//   whitespace is stripped and empty lines are dropped; each document is
//   trained on as [BOS] + characters + [BOS].
// - text: the whole file is one character stream, newline included; training
//   reads windows of block_size + 1 characters at random offsets.
#ifndef MICROGPT_COMMON_DATASET_H_
#define MICROGPT_COMMON_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microgpt {

enum class DatasetFormat { kDocuments, kText };

// "documents" or "text".
absl::string_view DatasetFormatName(DatasetFormat format);
// The format of a name DatasetFormatName gives; INVALID_ARGUMENT otherwise.
absl::StatusOr<DatasetFormat> ParseDatasetFormat(absl::string_view name);

// Upper bound on a dataset file read into memory.
inline constexpr int64_t kMaxDatasetBytes = int64_t{1} << 30;

// The documents of `text`. INVALID_ARGUMENT when the text is not valid UTF-8
// (naming the line) or has no document at all.
absl::StatusOr<std::vector<std::string>> ParseDocuments(absl::string_view text);

// A dataset as read, in its format.
struct Dataset {
  DatasetFormat format = DatasetFormat::kDocuments;
  std::vector<std::string> documents;  // kDocuments: at least one
  std::string text;                    // kText: valid UTF-8, not empty
};

// Datasets of documents or text already in memory, unchecked (tests,
// benchmarks): the parsers below check what comes from outside.
Dataset DocumentsDataset(std::vector<std::string> documents);
Dataset TextDataset(std::string text);

// `text` as a kText dataset: INVALID_ARGUMENT when it is not valid UTF-8
// (naming the line and byte) or empty.
absl::StatusOr<Dataset> ParseText(std::string text);

// Reads a dataset file in `format` (ParseDocuments or ParseText). NOT_FOUND
// when it does not exist, INVALID_ARGUMENT when it is larger than
// `max_bytes` or not a dataset of that format; errors name the path.
absl::StatusOr<Dataset> LoadDataset(const std::string& path,
                                    DatasetFormat format,
                                    int64_t max_bytes = kMaxDatasetBytes);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_DATASET_H_
