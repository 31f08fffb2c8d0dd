#include "common/checkpoint_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <limits>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "openssl/rand.h"

namespace microgpt {
namespace {

constexpr absl::string_view kModelFile = "model.safetensors";
constexpr absl::string_view kOptimizerFile = "optimizer.safetensors";
constexpr absl::string_view kManifestFile = "manifest.json";
constexpr absl::string_view kTempPrefix = ".tmp-";
// Under the root: one lease file per reader (not a valid model name).
constexpr absl::string_view kLeaseDir = ".leases";
constexpr int64_t kMaxLeaseBytes = 1 << 20;
constexpr int64_t kMaxManifestBytes = 1 << 20;
constexpr size_t kMaxModelNameLength = 64;

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  if (dir.empty()) return std::string(name);
  if (absl::EndsWith(dir, "/")) return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

absl::Status ErrnoError(int error, absl::string_view what,
                        absl::string_view path) {
  return absl::ErrnoToStatus(error, absl::StrCat(what, " ", path));
}

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now, reporting the error a delayed write may surface here.
  int Close() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

absl::Status FsyncDirectory(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError(errno, "cannot open directory", path);
  if (::fsync(fd.get()) != 0) return ErrnoError(errno, "cannot fsync", path);
  return absl::OkStatus();
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Creates `path` and its missing parents; each new directory is made durable
// by fsyncing its parent.
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

// Writes a new file and fsyncs it.
absl::Status WriteFileSynced(const std::string& path, absl::string_view bytes) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoError(errno, "cannot create", path);
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd.get(), bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "cannot write", path);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd.get()) != 0) return ErrnoError(errno, "cannot fsync", path);
  if (fd.Close() != 0) return ErrnoError(errno, "cannot close", path);
  return absl::OkStatus();
}

// A whole file of at most `max_bytes`. NOT_FOUND when it does not exist,
// DATA_LOSS when it is larger.
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
  if (::fstat(fd.get(), &st) != 0)
    return ErrnoError(errno, "cannot stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::DataLossError(absl::StrCat(path, " is not a regular file"));
  }
  if (st.st_size > max_bytes) {
    return absl::DataLossError(absl::StrCat(path, " has ", st.st_size,
                                            " bytes, more than the expected ",
                                            max_bytes));
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
  bytes.resize(done);  // shrank under us: the size check will say so
  return bytes;
}

// Names in a directory other than "." and "..".
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

// A version directory name: the canonical decimal of an int64 > 0 (digits
// only, no sign, no leading zero).
bool ParseVersion(absl::string_view name, int64_t* version) {
  if (name.empty() || name[0] == '0' ||
      !std::all_of(name.begin(), name.end(), absl::ascii_isdigit)) {
    return false;
  }
  return absl::SimpleAtoi(name, version) && *version > 0;
}

std::string RandomHex() {
  unsigned char bytes[8];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // Only uniqueness matters here, not secrecy.
    const uint64_t fallback = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count());
    for (size_t i = 0; i < sizeof(bytes); ++i) bytes[i] = fallback >> (8 * i);
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

// Renames a directory unless `to` exists: ALREADY_EXISTS then.
absl::Status RenameNoReplace(const std::string& from, const std::string& to) {
#ifdef RENAME_NOREPLACE
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(),
                  RENAME_NOREPLACE) == 0) {
    return absl::OkStatus();
  }
  if (errno == EEXIST) {
    return absl::AlreadyExistsError(absl::StrCat(to, " already exists"));
  }
  if (errno != EINVAL && errno != ENOSYS) {
    return ErrnoError(errno, "cannot rename into", to);
  }
#endif
  // No RENAME_NOREPLACE on this file system: check, then rename, which also
  // fails on a non-empty directory.
  struct stat st;
  if (::lstat(to.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(to, " already exists"));
  }
  if (::rename(from.c_str(), to.c_str()) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY) {
      return absl::AlreadyExistsError(absl::StrCat(to, " already exists"));
    }
    return ErrnoError(errno, "cannot rename into", to);
  }
  return absl::OkStatus();
}

absl::Status ValidateVersion(int64_t version) {
  if (version < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("version must be a positive integer, got ", version));
  }
  return absl::OkStatus();
}

bool SameLayout(const ParameterLayout& a, const ParameterLayout& b) {
  if (a.tensors().size() != b.tensors().size()) return false;
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const TensorSpec& x = a.tensors()[i];
    const TensorSpec& y = b.tensors()[i];
    if (x.name != y.name || x.rows != y.rows || x.cols != y.cols) return false;
  }
  return true;
}

// What SerializeModel and SerializeOptimizer need to write a file that loads.
absl::Status CheckPublishable(const ModelCheckpoint& model,
                              const OptimizerCheckpoint* optimizer,
                              const ParameterLayout& layout) {
  MICROGPT_RETURN_IF_ERROR(model.config.Validate());
  if (model.tokenizer.vocab_size() != model.config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the tokenizer's vocab_size ", model.tokenizer.vocab_size(),
        " differs from the config's ", model.config.vocab_size));
  }
  if (model.step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("step must be >= 0, got ", model.step));
  }
  const ParameterLayout model_layout(model.config);
  if (model.parameters.size() != model_layout.total_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model has ", model.parameters.size(),
                     " parameters, its config ", model_layout.total_size()));
  }
  if (!SameLayout(layout, model_layout)) {
    return absl::InvalidArgumentError(
        "the parameter layout does not match the model's config");
  }
  if (optimizer == nullptr) return absl::OkStatus();
  if (optimizer->m.size() != layout.total_size() ||
      optimizer->v.size() != layout.total_size()) {
    return absl::InvalidArgumentError(
        "the Adam moments do not match the parameter layout");
  }
  if (optimizer->adam_step < 0 || optimizer->data_epoch < 0) {
    return absl::InvalidArgumentError("adam_step and data_epoch must be >= 0");
  }
  const int64_t num_documents =
      static_cast<int64_t>(optimizer->data_order.size());
  if (optimizer->data_cursor < 0 || optimizer->data_cursor > num_documents) {
    return absl::InvalidArgumentError(
        absl::StrCat("data_cursor ", optimizer->data_cursor, " is outside [0, ",
                     num_documents, "]"));
  }
  for (int32_t index : optimizer->data_order) {
    if (index < 0 || index >= num_documents) {
      return absl::InvalidArgumentError(
          absl::StrCat("data_order has ", index,
                       ", not a document index in [0, ", num_documents, ")"));
    }
  }
  return absl::OkStatus();
}

// Reads `file_name` of a version directory and checks it against the
// manifest. `missing` is the error when the manifest does not list it.
absl::StatusOr<std::string> ReadVerified(const std::string& dir,
                                         int64_t version,
                                         absl::string_view file_name,
                                         absl::StatusCode missing) {
  if (!IsDirectory(dir)) {
    return absl::NotFoundError(absl::StrCat("no version ", version, " (", dir,
                                            " is not a directory)"));
  }
  const std::string manifest_path = JoinPath(dir, kManifestFile);
  absl::StatusOr<std::string> manifest_text =
      ReadFile(manifest_path, kMaxManifestBytes);
  if (!manifest_text.ok()) {
    return absl::DataLossError(absl::StrCat("cannot read the manifest: ",
                                            manifest_text.status().message()));
  }
  const nlohmann::json manifest = nlohmann::json::parse(
      *manifest_text, nullptr, /*allow_exceptions=*/false);
  const auto corrupt_manifest = [&manifest_path](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(manifest_path, ": ", why));
  };
  if (!manifest.is_object()) return corrupt_manifest("not a JSON object");
  const auto manifest_version = manifest.find("version");
  if (manifest_version == manifest.end() ||
      !manifest_version->is_number_integer() ||
      manifest_version->get<int64_t>() != version) {
    return corrupt_manifest(absl::StrCat("\"version\" is not ", version));
  }
  const auto files = manifest.find("files");
  if (files == manifest.end() || !files->is_object()) {
    return corrupt_manifest("no \"files\" object");
  }
  const auto entry = files->find(std::string(file_name));
  if (entry == files->end()) {
    return absl::Status(missing,
                        absl::StrCat(manifest_path, " lists no ", file_name));
  }
  const auto size = entry->is_object() ? entry->find("size") : entry->end();
  const auto sha256 = entry->is_object() ? entry->find("sha256") : entry->end();
  if (size == entry->end() || !size->is_number_unsigned() ||
      sha256 == entry->end() || !sha256->is_string() ||
      !IsSha256Hex(*sha256->get_ptr<const std::string*>()) ||
      size->get<uint64_t>() >
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return corrupt_manifest(absl::StrCat("the entry of ", file_name,
                                         " needs \"size\" and \"sha256\""));
  }
  const int64_t expected_size = static_cast<int64_t>(size->get<uint64_t>());
  const std::string& expected_sha256 = *sha256->get_ptr<const std::string*>();

  const std::string path = JoinPath(dir, file_name);
  absl::StatusOr<std::string> bytes = ReadFile(path, expected_size);
  if (!bytes.ok()) {
    return absl::DataLossError(
        absl::StrCat(file_name, " of version ", version,
                     " is unreadable: ", bytes.status().message()));
  }
  if (static_cast<int64_t>(bytes->size()) != expected_size) {
    return absl::DataLossError(absl::StrCat(path, " has ", bytes->size(),
                                            " bytes but the manifest says ",
                                            expected_size, " (truncated?)"));
  }
  MICROGPT_ASSIGN_OR_RETURN(const std::string actual_sha256, Sha256Hex(*bytes));
  if (actual_sha256 != expected_sha256) {
    return absl::DataLossError(
        absl::StrCat(path, " is corrupt: its SHA-256 is ", actual_sha256,
                     " but the manifest says ", expected_sha256));
  }
  return bytes;
}

}  // namespace

absl::Status ValidateModelName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxModelNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("a model name has 1 to ", kMaxModelNameLength,
                     " characters, got ", name.size()));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("model name \"", absl::CHexEscape(name), "\" has '",
                       absl::CHexEscape(name.substr(i, 1)), "' at position ", i,
                       "; use only [A-Za-z0-9._-]"));
    }
  }
  if (!absl::ascii_isalnum(name[0])) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model name \"", name, "\" must start with a letter or digit"));
  }
  return absl::OkStatus();
}

CheckpointStore::CheckpointStore(std::string root, RetentionPolicy retention)
    : root_(std::move(root)), retention_(retention) {}

std::string CheckpointStore::VersionPath(absl::string_view model_name,
                                         int64_t version) const {
  return JoinPath(JoinPath(root_, model_name), absl::StrCat(version));
}

absl::Status CheckpointStore::Publish(
    absl::string_view model_name, int64_t version, const ModelCheckpoint& model,
    const OptimizerCheckpoint* optimizer, const ParameterLayout& layout,
    const std::vector<std::pair<std::string, std::string>>& extra_files) {
  MICROGPT_RETURN_IF_ERROR(ValidateModelName(model_name));
  MICROGPT_RETURN_IF_ERROR(ValidateVersion(version));
  MICROGPT_RETURN_IF_ERROR(CheckPublishable(model, optimizer, layout));

  std::vector<std::pair<absl::string_view, std::string>> files;
  files.emplace_back(kModelFile, SerializeModel(model));
  if (optimizer != nullptr) {
    files.emplace_back(kOptimizerFile, SerializeOptimizer(*optimizer, layout));
  }
  for (const auto& [name, bytes] : extra_files) {
    if (name.empty() || name == kModelFile || name == kOptimizerFile ||
        name == kManifestFile || name[0] == '.' ||
        name.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", name, "\" cannot be an extra file"));
    }
    files.emplace_back(name, bytes);
  }
  nlohmann::json manifest = {{"version", version},
                             {"files", nlohmann::json::object()}};
  for (const auto& [name, bytes] : files) {
    if (bytes.empty()) {
      return absl::InternalError(absl::StrCat("cannot serialise ", name));
    }
    MICROGPT_ASSIGN_OR_RETURN(const std::string sha256, Sha256Hex(bytes));
    manifest["files"][std::string(name)] = {{"size", bytes.size()},
                                            {"sha256", sha256}};
  }

  const std::string model_dir = JoinPath(root_, model_name);
  const std::string final_dir = JoinPath(model_dir, absl::StrCat(version));
  MICROGPT_RETURN_IF_ERROR(MakeDirectories(model_dir));
  struct stat st;
  if (::lstat(final_dir.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        "model \"", model_name, "\" already has version ", version));
  }
  const std::string temp_dir = JoinPath(
      model_dir,
      absl::StrCat(kTempPrefix, version, "-", ::getpid(), "-", RandomHex()));
  if (::mkdir(temp_dir.c_str(), 0755) != 0) {
    return ErrnoError(errno, "cannot create directory", temp_dir);
  }
  // Locked until this process exits or closes it, well after the rename:
  // RemoveTemporaryDirectories leaves it alone while we write. A cleaner in
  // another process that runs between the mkdir and the flock deletes the
  // empty directory; this publish then fails (ENOENT on the first file)
  // without any effect on the versions in place.
  Fd lock(::open(temp_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  absl::Status status = [&]() -> absl::Status {
    if (lock.get() < 0) return ErrnoError(errno, "cannot open", temp_dir);
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      return ErrnoError(errno, "cannot lock", temp_dir);
    }
    for (const auto& [name, bytes] : files) {
      MICROGPT_RETURN_IF_ERROR(
          WriteFileSynced(JoinPath(temp_dir, name), bytes));
    }
    MICROGPT_RETURN_IF_ERROR(WriteFileSynced(JoinPath(temp_dir, kManifestFile),
                                             manifest.dump(2) + "\n"));
    if (::fsync(lock.get()) != 0) {
      return ErrnoError(errno, "cannot fsync", temp_dir);
    }
    absl::Status renamed = RenameNoReplace(temp_dir, final_dir);
    if (absl::IsAlreadyExists(renamed)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "model \"", model_name, "\" already has version ", version));
    }
    return renamed;
  }();
  if (!status.ok()) {
    std::error_code ignored;
    std::filesystem::remove_all(temp_dir, ignored);
    return status;
  }
  return FsyncDirectory(model_dir);
}

absl::StatusOr<std::vector<std::string>> CheckpointStore::ListModels() const {
  MICROGPT_ASSIGN_OR_RETURN(std::vector<std::string> names,
                            ListDirectory(root_));
  std::vector<std::string> models;
  for (std::string& name : names) {
    if (ValidateModelName(name).ok() && IsDirectory(JoinPath(root_, name))) {
      models.push_back(std::move(name));
    }
  }
  return models;
}

absl::StatusOr<std::vector<int64_t>> CheckpointStore::ListVersions(
    absl::string_view model_name) const {
  MICROGPT_RETURN_IF_ERROR(ValidateModelName(model_name));
  const std::string model_dir = JoinPath(root_, model_name);
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(model_dir);
  if (absl::IsNotFound(names.status())) {
    return absl::NotFoundError(
        absl::StrCat("no model \"", model_name, "\" under ", root_));
  }
  if (!names.ok()) return names.status();
  std::vector<int64_t> versions;
  for (const std::string& name : *names) {
    int64_t version;
    if (ParseVersion(name, &version) &&
        IsDirectory(JoinPath(model_dir, name))) {
      versions.push_back(version);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

absl::StatusOr<ModelCheckpoint> CheckpointStore::LoadModel(
    absl::string_view model_name, int64_t version) const {
  MICROGPT_RETURN_IF_ERROR(ValidateModelName(model_name));
  MICROGPT_RETURN_IF_ERROR(ValidateVersion(version));
  const std::string dir = VersionPath(model_name, version);
  MICROGPT_ASSIGN_OR_RETURN(
      const std::string bytes,
      ReadVerified(dir, version, kModelFile, absl::StatusCode::kDataLoss));
  absl::StatusOr<ModelCheckpoint> model = ParseModel(bytes);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat(JoinPath(dir, kModelFile), ": ",
                                     model.status().message()));
  }
  return model;
}

absl::StatusOr<std::string> CheckpointStore::LoadExtraFile(
    absl::string_view model_name, int64_t version,
    absl::string_view file_name) const {
  MICROGPT_RETURN_IF_ERROR(ValidateModelName(model_name));
  MICROGPT_RETURN_IF_ERROR(ValidateVersion(version));
  return ReadVerified(VersionPath(model_name, version), version, file_name,
                      absl::StatusCode::kNotFound);
}

absl::StatusOr<OptimizerCheckpoint> CheckpointStore::LoadOptimizer(
    absl::string_view model_name, int64_t version,
    const ParameterLayout& layout) const {
  MICROGPT_RETURN_IF_ERROR(ValidateModelName(model_name));
  MICROGPT_RETURN_IF_ERROR(ValidateVersion(version));
  const std::string dir = VersionPath(model_name, version);
  MICROGPT_ASSIGN_OR_RETURN(
      const std::string bytes,
      ReadVerified(dir, version, kOptimizerFile, absl::StatusCode::kNotFound));
  absl::StatusOr<OptimizerCheckpoint> state = ParseOptimizer(bytes, layout);
  if (!state.ok()) {
    return absl::Status(state.status().code(),
                        absl::StrCat(JoinPath(dir, kOptimizerFile), ": ",
                                     state.status().message()));
  }
  return state;
}

absl::Status CheckpointStore::RemoveTemporaryDirectories() const {
  absl::StatusOr<std::vector<std::string>> models = ListModels();
  if (absl::IsNotFound(models.status())) return absl::OkStatus();
  if (!models.ok()) return models.status();
  absl::Status first_error;
  for (const std::string& model : *models) {
    const std::string model_dir = JoinPath(root_, model);
    absl::StatusOr<std::vector<std::string>> names = ListDirectory(model_dir);
    if (!names.ok()) {
      first_error.Update(names.status());
      continue;
    }
    for (const std::string& name : *names) {
      if (!absl::StartsWith(name, kTempPrefix)) continue;
      const std::string path = JoinPath(model_dir, name);
      // A live publisher (or deleter) holds the lock; a dead one's is gone.
      // Held while deleting, so two cleaners do not race.
      Fd lock(::open(path.c_str(),
                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (lock.get() >= 0 && ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) continue;
        first_error.Update(ErrnoError(errno, "cannot lock", path));
        continue;
      }
      if (lock.get() < 0 && errno == ENOENT) continue;  // another cleaner's
      std::error_code error;
      std::filesystem::remove_all(path, error);
      if (error) {
        first_error.Update(absl::InternalError(
            absl::StrCat("cannot remove ", path, ": ", error.message())));
      } else {
        LogInfo(absl::StrCat("removed orphaned temporary directory ", path));
      }
    }
  }
  return first_error;
}

absl::Status CheckpointStore::WriteLease(
    absl::string_view holder,
    const std::map<std::string, std::vector<int64_t>>& versions) const {
  if (absl::Status valid = ValidateModelName(holder); !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease holder: ", valid.message()));
  }
  nlohmann::json lease = {{"holder", std::string(holder)},
                          {"models", nlohmann::json::object()}};
  for (const auto& [model, model_versions] : versions) {
    MICROGPT_RETURN_IF_ERROR(ValidateModelName(model));
    lease["models"][model] = model_versions;
  }
  const std::string lease_dir = JoinPath(root_, kLeaseDir);
  MICROGPT_RETURN_IF_ERROR(CreateLeaseDirectory());
  const std::string temp =
      JoinPath(lease_dir, absl::StrCat(kTempPrefix, holder, "-", RandomHex()));
  absl::Status status = WriteFileSynced(temp, lease.dump() + "\n");
  if (status.ok() &&
      ::rename(temp.c_str(), JoinPath(lease_dir, holder).c_str()) != 0) {
    status =
        ErrnoError(errno, "cannot rename into", JoinPath(lease_dir, holder));
  }
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  return FsyncDirectory(lease_dir);
}

absl::Status CheckpointStore::CreateLeaseDirectory() const {
  return MakeDirectories(JoinPath(root_, kLeaseDir));
}

absl::Status CheckpointStore::RemoveLease(absl::string_view holder) const {
  MICROGPT_RETURN_IF_ERROR(ValidateModelName(holder));
  const std::string path = JoinPath(JoinPath(root_, kLeaseDir), holder);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "cannot remove", path);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::set<int64_t>> CheckpointStore::LeasedVersions(
    absl::string_view model_name) const {
  MICROGPT_RETURN_IF_ERROR(ValidateModelName(model_name));
  std::set<int64_t> leased;
  const std::string lease_dir = JoinPath(root_, kLeaseDir);
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(lease_dir);
  if (absl::IsNotFound(names.status())) return leased;
  if (!names.ok()) return names.status();
  const absl::Time now = absl::Now();
  for (const std::string& name : *names) {
    const std::string path = JoinPath(lease_dir, name);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;  // replaced or removed meanwhile
      return ErrnoError(errno, "cannot stat", path);
    }
    if (now - absl::TimeFromTimespec(st.st_mtim) > retention_.lease_ttl) {
      // Expired: its holder died or lost the root. A holder that comes back
      // writes a new one before it loads anything else.
      ::unlink(path.c_str());
      continue;
    }
    if (absl::StartsWith(name, kTempPrefix)) continue;  // being written
    const auto unreadable = [&path](absl::string_view why) {
      return absl::FailedPreconditionError(
          absl::StrCat("lease ", path, " ", why,
                       "; keeping every version until it expires"));
    };
    absl::StatusOr<std::string> text = ReadFile(path, kMaxLeaseBytes);
    if (absl::IsNotFound(text.status())) continue;
    if (!text.ok()) return unreadable(text.status().message());
    const nlohmann::json lease =
        nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    const auto models = lease.is_object() ? lease.find("models") : lease.end();
    if (models == lease.end() || !models->is_object()) {
      return unreadable("has no \"models\" object");
    }
    const auto versions = models->find(std::string(model_name));
    if (versions == models->end()) continue;
    if (!versions->is_array()) return unreadable("is malformed");
    for (const nlohmann::json& version : *versions) {
      if (!version.is_number_integer()) return unreadable("is malformed");
      leased.insert(version.get<int64_t>());
    }
  }
  return leased;
}

absl::Status CheckpointStore::DeleteVersion(absl::string_view model_name,
                                            int64_t version) const {
  const std::string model_dir = JoinPath(root_, model_name);
  const std::string dir = VersionPath(model_name, version);
  const std::string temp =
      JoinPath(model_dir, absl::StrCat(kTempPrefix, "delete-", version, "-",
                                       ::getpid(), "-", RandomHex()));
  // Locked across the rename (the lock follows the directory), so that a
  // concurrent RemoveTemporaryDirectories does not delete it under us.
  Fd lock(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (lock.get() < 0) return ErrnoError(errno, "cannot open", dir);
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    return ErrnoError(errno, "cannot lock", dir);
  }
  if (::rename(dir.c_str(), temp.c_str()) != 0) {
    return ErrnoError(errno, "cannot rename", dir);
  }
  // Durably gone before the files go: after a crash the version is either
  // whole or an orphaned temporary directory.
  MICROGPT_RETURN_IF_ERROR(FsyncDirectory(model_dir));
  std::error_code error;
  std::filesystem::remove_all(temp, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot remove ", temp, ": ", error.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> CheckpointStore::ApplyRetention(
    absl::string_view model_name) const {
  std::vector<int64_t> deleted;
  const int64_t keep = retention_.keep_versions;
  if (keep <= 0) return deleted;
  MICROGPT_ASSIGN_OR_RETURN(const std::vector<int64_t> versions,
                            ListVersions(model_name));
  if (static_cast<int64_t>(versions.size()) <= keep) return deleted;
  MICROGPT_ASSIGN_OR_RETURN(const std::set<int64_t> leased,
                            LeasedVersions(model_name));
  absl::Status first_error;
  for (size_t i = 0; i + keep < versions.size(); ++i) {
    if (leased.count(versions[i]) != 0) continue;
    absl::Status status = DeleteVersion(model_name, versions[i]);
    if (status.ok()) {
      deleted.push_back(versions[i]);
    } else {
      first_error.Update(status);
    }
  }
  if (!first_error.ok()) return first_error;
  return deleted;
}

}  // namespace microgpt
