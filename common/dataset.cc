#include "common/dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, " is not valid UTF-8 (byte ",
                       bad + 1, " of the line)"));
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

absl::StatusOr<std::vector<std::string>> LoadDocuments(const std::string& path,
                                                       int64_t max_bytes) {
  absl::StatusOr<std::string> bytes = ReadFile(path, max_bytes);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::vector<std::string>> documents = ParseDocuments(*bytes);
  if (!documents.ok()) {
    return absl::Status(documents.status().code(),
                        absl::StrCat(path, ": ", documents.status().message()));
  }
  return documents;
}

}  // namespace microgpt
