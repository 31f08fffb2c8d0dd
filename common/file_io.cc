#include "common/file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace microgpt {

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  if (dir.empty()) return std::string(name);
  if (absl::EndsWith(dir, "/")) return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

absl::Status ErrnoError(int error, absl::string_view what,
                        absl::string_view path) {
  return absl::ErrnoToStatus(error, absl::StrCat(what, " ", path));
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

int Fd::Close() {
  const int result = ::close(fd_);
  fd_ = -1;
  return result;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

absl::Status FsyncDirectory(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError(errno, "cannot open directory", path);
  if (::fsync(fd.get()) != 0) return ErrnoError(errno, "cannot fsync", path);
  return absl::OkStatus();
}

absl::Status MakeDirectories(const std::string& path) {
  if (path.empty() || IsDirectory(path)) return absl::OkStatus();
  std::string parent = ".";
  if (const size_t slash = path.find_last_of('/'); slash != std::string::npos) {
    parent = slash == 0 ? "/" : path.substr(0, slash);
    MICROGPT_RETURN_IF_ERROR(MakeDirectories(parent));
  }
  if (::mkdir(path.c_str(), 0755) != 0) {
    if (errno == EEXIST) {
      if (IsDirectory(path)) return absl::OkStatus();  // made meanwhile
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exists and is not a directory"));
    }
    return ErrnoError(errno, "cannot create directory", path);
  }
  return FsyncDirectory(parent);
}

absl::StatusOr<SyncedFileWriter> SyncedFileWriter::Create(std::string path) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoError(errno, "cannot create", path);
  return SyncedFileWriter(std::move(path), std::move(fd));
}

absl::Status SyncedFileWriter::Append(absl::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "cannot write", path_);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncedFileWriter::Close() {
  if (::fsync(fd_.get()) != 0) return ErrnoError(errno, "cannot fsync", path_);
  if (fd_.Close() != 0) return ErrnoError(errno, "cannot close", path_);
  return absl::OkStatus();
}

absl::Status WriteFileSynced(const std::string& path, absl::string_view bytes) {
  MICROGPT_ASSIGN_OR_RETURN(SyncedFileWriter file,
                            SyncedFileWriter::Create(path));
  MICROGPT_RETURN_IF_ERROR(file.Append(bytes));
  return file.Close();
}

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     int64_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("no file ", path));
    }
    return ErrnoError(errno, "cannot open", path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return ErrnoError(errno, "cannot stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a regular file"));
  }
  if (st.st_size > max_bytes) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " has ", st.st_size,
                     " bytes, more than the expected ", max_bytes));
  }
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "cannot read", path);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

absl::StatusOr<std::vector<std::string>> ListDirectory(
    const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("no directory ", path));
    }
    return ErrnoError(errno, "cannot open directory", path);
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = ::readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
    errno = 0;
  }
  const int error = errno;
  ::closedir(dir);
  if (error != 0) return ErrnoError(error, "cannot list directory", path);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace microgpt
