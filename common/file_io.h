// POSIX file operations for the checkpoint store, with absl::Status errors
// that name the path (errno mapped by absl::ErrnoToStatus, so ENOSPC is
// RESOURCE_EXHAUSTED, EROFS PERMISSION_DENIED). Writes are durable: a file is
// fsynced before it counts as written, a new directory's parent is fsynced.
//
//   MICROGPT_RETURN_IF_ERROR(MakeDirectories("/ckpt/names"));
//   MICROGPT_RETURN_IF_ERROR(WriteFileSynced("/ckpt/names/x", bytes));
//   MICROGPT_RETURN_IF_ERROR(FsyncDirectory("/ckpt/names"));
#ifndef MICROGPT_COMMON_FILE_IO_H_
#define MICROGPT_COMMON_FILE_IO_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microgpt {

// "dir/name"; just `name` when dir is empty.
std::string JoinPath(absl::string_view dir, absl::string_view name);

// The status of a failed system call: "<what> <path>: <strerror>".
absl::Status ErrnoError(int error, absl::string_view what,
                        absl::string_view path);

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&&) = delete;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  int get() const { return fd_; }
  // Closes now, returning close()'s result: a delayed write error may
  // surface only here.
  int Close();

 private:
  int fd_;
};

bool IsDirectory(const std::string& path);

absl::Status FsyncDirectory(const std::string& path);

// Creates `path` and its missing parents; each new directory is made durable
// by fsyncing its parent. FAILED_PRECONDITION when `path` is a file.
absl::Status MakeDirectories(const std::string& path);

// A new file written front to back and fsynced before Close() returns OK.
// Create fails if the file exists (O_EXCL).
class SyncedFileWriter {
 public:
  static absl::StatusOr<SyncedFileWriter> Create(std::string path);

  absl::Status Append(absl::string_view bytes);
  // fsync, then close. Call once; without it the destructor closes unsynced.
  absl::Status Close();

 private:
  SyncedFileWriter(std::string path, Fd fd)
      : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;
  Fd fd_;
};

// Writes a new file (O_EXCL) and fsyncs it.
absl::Status WriteFileSynced(const std::string& path, absl::string_view bytes);

// A whole regular file of at most `max_bytes`. NOT_FOUND when it does not
// exist, FAILED_PRECONDITION when it is not a regular file or is larger. A
// file that shrinks while it is read comes back short.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     int64_t max_bytes);

// The names in a directory other than "." and "..", sorted. NOT_FOUND when
// the directory does not exist.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& path);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_FILE_IO_H_
