#include "common/dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace microgpt {
namespace {

// Closes a file descriptor when it goes out of scope.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { ::close(fd_); }

 private:
  int fd_;
};

// The whole file, or an error naming `path`. Reads at most max_bytes + 1
// bytes so that a file growing under us, or a pipe, cannot exhaust memory.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     int64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) {
      return absl::NotFoundError(
          absl::StrCat("dataset file not found: ", path));
    }
    return absl::ErrnoToStatus(error, absl::StrCat("cannot open ", path));
  }
  FdCloser closer(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot stat ", path));
  }
  if (S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is a directory, not a dataset file"));
  }
  const auto too_large = [&path, max_bytes]() {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset file ", path, " is larger than the limit of ",
                     max_bytes, " bytes"));
  };
  if (S_ISREG(st.st_mode) && st.st_size > max_bytes) return too_large();
  std::string bytes;
  if (S_ISREG(st.st_mode)) bytes.reserve(static_cast<size_t>(st.st_size));
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path));
    }
    if (n == 0) break;
    if (static_cast<int64_t>(bytes.size()) + n > max_bytes) return too_large();
    bytes.append(buffer, static_cast<size_t>(n));
  }
  return bytes;
}

absl::Status InvalidUtf8Error(int64_t line_number, size_t byte_in_line) {
  return absl::InvalidArgumentError(
      absl::StrCat("line ", line_number, " is not valid UTF-8 (byte ",
                   byte_in_line + 1, " of the line)"));
}

}  // namespace

absl::string_view DatasetFormatName(DatasetFormat format) {
  return format == DatasetFormat::kText ? "text" : "documents";
}

absl::StatusOr<DatasetFormat> ParseDatasetFormat(absl::string_view name) {
  if (name == "documents") return DatasetFormat::kDocuments;
  if (name == "text") return DatasetFormat::kText;
  return absl::InvalidArgumentError(absl::StrCat(
      "format must be \"documents\" or \"text\", got \"", name, "\""));
}

absl::StatusOr<std::vector<std::string>> ParseDocuments(
    absl::string_view text) {
  std::vector<std::string> documents;
  int64_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t end = text.find('\n');
    absl::string_view line = text.substr(0, end);
    text.remove_prefix(end == absl::string_view::npos ? text.size() : end + 1);
    if (const size_t bad = FindInvalidUtf8(line); bad != line.size()) {
      return InvalidUtf8Error(line_number, bad);
    }
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) documents.emplace_back(line);
  }
  if (documents.empty()) {
    return absl::InvalidArgumentError(
        "the dataset has no documents (no non-empty line)");
  }
  return documents;
}

Dataset DocumentsDataset(std::vector<std::string> documents) {
  Dataset dataset;
  dataset.documents = std::move(documents);
  return dataset;
}

Dataset TextDataset(std::string text) {
  Dataset dataset;
  dataset.format = DatasetFormat::kText;
  dataset.text = std::move(text);
  return dataset;
}

absl::StatusOr<Dataset> ParseText(std::string text) {
  if (const size_t bad = FindInvalidUtf8(text); bad != text.size()) {
    const size_t line_start = text.rfind('\n', bad);
    const size_t start = line_start == std::string::npos ? 0 : line_start + 1;
    const int64_t line_number =
        1 + std::count(text.begin(), text.begin() + start, '\n');
    return InvalidUtf8Error(line_number, bad - start);
  }
  if (text.empty()) {
    return absl::InvalidArgumentError("the dataset is empty (no characters)");
  }
  return TextDataset(std::move(text));
}

absl::StatusOr<Dataset> LoadDataset(const std::string& path,
                                    DatasetFormat format, int64_t max_bytes) {
  absl::StatusOr<std::string> bytes = ReadFile(path, max_bytes);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<Dataset> dataset;
  if (format == DatasetFormat::kText) {
    dataset = ParseText(*std::move(bytes));
  } else {
    absl::StatusOr<std::vector<std::string>> documents = ParseDocuments(*bytes);
    if (documents.ok()) {
      dataset = DocumentsDataset(*std::move(documents));
    } else {
      dataset = documents.status();
    }
  }
  if (!dataset.ok()) {
    return absl::Status(dataset.status().code(),
                        absl::StrCat(path, ": ", dataset.status().message()));
  }
  return dataset;
}

}  // namespace microgpt
