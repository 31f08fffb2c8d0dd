#include "common/checkpoint_dir.h"

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
#include <set>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "openssl/rand.h"

namespace microgpt {
namespace {

constexpr absl::string_view kTempPrefix = ".tmp-";
constexpr int64_t kMaxManifestBytes = 1 << 20;

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

absl::Status RemoveAll(const std::string& path) {
  std::error_code error;
  std::filesystem::remove_all(path, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot remove ", path, ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateVersion(int64_t version) {
  if (version < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("version must be a positive integer, got ", version));
  }
  return absl::OkStatus();
}

bool ParseVersionName(absl::string_view name, int64_t* version) {
  if (name.empty() || name[0] == '0' ||
      !std::all_of(name.begin(), name.end(), absl::ascii_isdigit)) {
    return false;
  }
  return absl::SimpleAtoi(name, version) && *version > 0;
}

bool IsPlainFileName(absl::string_view name) {
  return !name.empty() && name[0] != '.' &&
         name.find_first_of(absl::string_view("/\0", 2)) ==
             absl::string_view::npos;
}

absl::StatusOr<Manifest> MakeManifest(
    int64_t version,
    const std::vector<std::pair<std::string, std::string>>& files) {
  MICROGPT_RETURN_IF_ERROR(ValidateVersion(version));
  Manifest manifest;
  manifest.version = version;
  for (const auto& [name, bytes] : files) {
    if (!IsPlainFileName(name) || name == kManifestFile) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", absl::CHexEscape(name), "\" cannot be a file of a version"));
    }
    MICROGPT_ASSIGN_OR_RETURN(std::string sha256, Sha256Hex(bytes));
    const bool added =
        manifest.files
            .emplace(name, ManifestEntry{static_cast<int64_t>(bytes.size()),
                                         std::move(sha256)})
            .second;
    if (!added) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", name, "\" is given twice"));
    }
  }
  return manifest;
}

std::string SerializeManifest(const Manifest& manifest) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [name, entry] : manifest.files) {
    files[name] = {{"size", entry.size}, {"sha256", entry.sha256}};
  }
  const nlohmann::json json = {{"version", manifest.version},
                               {"files", std::move(files)}};
  return json.dump(2) + "\n";
}

absl::StatusOr<Manifest> ParseManifest(absl::string_view text,
                                       int64_t version) {
  // nlohmann keeps one of two equal keys without a word; a manifest that says
  // two things about a file is corrupt, so the keys of each object are
  // collected while parsing.
  std::vector<std::set<std::string>> open_objects;
  std::string repeated_key;
  const auto collect_keys = [&](int /*depth*/,
                                nlohmann::json::parse_event_t event,
                                nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open_objects.emplace_back();
    } else if (event == Event::object_end) {
      open_objects.pop_back();
    } else if (event == Event::key && repeated_key.empty() &&
               !open_objects.back()
                    .insert(*parsed.get_ptr<const std::string*>())
                    .second) {
      repeated_key = *parsed.get_ptr<const std::string*>();
    }
    return true;
  };
  const nlohmann::json json = nlohmann::json::parse(
      text.begin(), text.end(), collect_keys, /*allow_exceptions=*/false);
  if (!json.is_object()) return absl::DataLossError("not a JSON object");
  if (!repeated_key.empty()) {
    return absl::DataLossError(
        absl::StrCat("has \"", absl::CHexEscape(repeated_key), "\" twice"));
  }
  const auto json_version = json.find("version");
  if (json_version == json.end() || !json_version->is_number_integer() ||
      json_version->get<int64_t>() != version) {
    return absl::DataLossError(absl::StrCat("\"version\" is not ", version));
  }
  const auto files = json.find("files");
  if (files == json.end() || !files->is_object()) {
    return absl::DataLossError("no \"files\" object");
  }
  Manifest manifest;
  manifest.version = version;
  for (auto it = files->begin(); it != files->end(); ++it) {
    const std::string& name = it.key();
    if (!IsPlainFileName(name) || name == kManifestFile) {
      return absl::DataLossError(
          absl::StrCat("bad file name \"", absl::CHexEscape(name), "\""));
    }
    const nlohmann::json& entry = it.value();
    const auto size = entry.is_object() ? entry.find("size") : entry.end();
    const auto sha256 = entry.is_object() ? entry.find("sha256") : entry.end();
    if (size == entry.end() || !size->is_number_unsigned() ||
        size->get<uint64_t>() >
            static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        sha256 == entry.end() || !sha256->is_string() ||
        !IsSha256Hex(*sha256->get_ptr<const std::string*>())) {
      return absl::DataLossError(
          absl::StrCat("the entry of ", name,
                       " needs a \"size\" (bytes) and a \"sha256\" (64 "
                       "lowercase hex digits)"));
    }
    manifest.files[name] =
        ManifestEntry{static_cast<int64_t>(size->get<uint64_t>()),
                      *sha256->get_ptr<const std::string*>()};
  }
  return manifest;
}

absl::StatusOr<Manifest> ReadManifest(const std::string& dir, int64_t version,
                                      std::string* text) {
  const std::string path = JoinPath(dir, kManifestFile);
  absl::StatusOr<std::string> bytes = ReadFile(path, kMaxManifestBytes);
  if (absl::IsNotFound(bytes.status())) return bytes.status();
  if (!bytes.ok()) {
    return absl::DataLossError(
        absl::StrCat("cannot read the manifest: ", bytes.status().message()));
  }
  absl::StatusOr<Manifest> manifest = ParseManifest(*bytes, version);
  if (!manifest.ok()) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", manifest.status().message()));
  }
  if (text != nullptr) *text = *std::move(bytes);
  return manifest;
}

absl::StatusOr<std::string> ReadVerifiedFile(const std::string& dir,
                                             const Manifest& manifest,
                                             absl::string_view name) {
  const auto entry = manifest.files.find(std::string(name));
  if (entry == manifest.files.end()) {
    return absl::NotFoundError(
        absl::StrCat(JoinPath(dir, kManifestFile), " lists no ", name));
  }
  const ManifestEntry& expected = entry->second;
  const std::string path = JoinPath(dir, name);
  absl::StatusOr<std::string> bytes = ReadFile(path, expected.size);
  if (!bytes.ok()) {
    return absl::DataLossError(
        absl::StrCat(name, " of version ", manifest.version,
                     " is unreadable: ", bytes.status().message()));
  }
  if (static_cast<int64_t>(bytes->size()) != expected.size) {
    return absl::DataLossError(absl::StrCat(path, " has ", bytes->size(),
                                            " bytes but the manifest says ",
                                            expected.size, " (truncated?)"));
  }
  MICROGPT_ASSIGN_OR_RETURN(const std::string sha256, Sha256Hex(*bytes));
  if (sha256 != expected.sha256) {
    return absl::DataLossError(
        absl::StrCat(path, " is corrupt: its SHA-256 is ", sha256,
                     " but the manifest says ", expected.sha256));
  }
  return bytes;
}

absl::Status VerifyVersionDirectory(const std::string& dir, int64_t version) {
  absl::StatusOr<Manifest> manifest = ReadManifest(dir, version);
  if (absl::IsNotFound(manifest.status())) {
    return absl::DataLossError(absl::StrCat(dir, " has no ", kManifestFile));
  }
  if (!manifest.ok()) return manifest.status();
  MICROGPT_ASSIGN_OR_RETURN(const std::vector<std::string> names,
                            ListDirectory(dir));
  for (const std::string& name : names) {
    if (name != kManifestFile && manifest->files.count(name) == 0) {
      return absl::DataLossError(absl::StrCat(
          dir, " holds ", name, ", which its manifest does not list"));
    }
  }
  for (const auto& [name, entry] : manifest->files) {
    MICROGPT_RETURN_IF_ERROR(ReadVerifiedFile(dir, *manifest, name).status());
  }
  return absl::OkStatus();
}

std::string TemporaryName(absl::string_view tag) {
  return absl::StrCat(kTempPrefix, tag, "-", ::getpid(), "-", RandomHex());
}

bool IsTemporaryName(absl::string_view name) {
  return absl::StartsWith(name, kTempPrefix);
}

absl::Status RemoveOrphanedTemporaryDirectories(const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir);
  if (absl::IsNotFound(names.status())) return absl::OkStatus();
  if (!names.ok()) return names.status();
  absl::Status first_error;
  for (const std::string& name : *names) {
    if (!IsTemporaryName(name)) continue;
    const std::string path = JoinPath(dir, name);
    // A live writer (or deleter) holds the lock; a dead one's is gone. Held
    // while removing, so that two cleaners do not race.
    Fd lock(
        ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (lock.get() >= 0 && ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) continue;
      first_error.Update(ErrnoError(errno, "cannot lock", path));
      continue;
    }
    if (lock.get() < 0 && errno == ENOENT) continue;  // another cleaner's
    if (absl::Status removed = RemoveAll(path); !removed.ok()) {
      first_error.Update(removed);
    } else {
      LogInfo(absl::StrCat("removed orphaned temporary directory ", path));
    }
  }
  return first_error;
}

absl::Status PublishVersionDirectory(
    const std::string& model_dir, int64_t version,
    absl::FunctionRef<absl::Status(const std::string& temp_dir)> write) {
  MICROGPT_RETURN_IF_ERROR(ValidateVersion(version));
  MICROGPT_RETURN_IF_ERROR(MakeDirectories(model_dir));
  const std::string final_dir = JoinPath(model_dir, absl::StrCat(version));
  struct stat st;
  if (::lstat(final_dir.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(final_dir, " already exists"));
  }
  const std::string temp_dir =
      JoinPath(model_dir, TemporaryName(absl::StrCat(version)));
  if (::mkdir(temp_dir.c_str(), 0755) != 0) {
    return ErrnoError(errno, "cannot create directory", temp_dir);
  }
  // Locked until this function returns, well after the rename: cleaners leave
  // it alone while `write` fills it. A cleaner in another process that runs
  // between the mkdir and the flock removes the empty directory; the publish
  // then fails (ENOENT on the first file) without any effect on the versions
  // in place.
  Fd lock(::open(temp_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  absl::Status status = [&]() -> absl::Status {
    if (lock.get() < 0) return ErrnoError(errno, "cannot open", temp_dir);
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      return ErrnoError(errno, "cannot lock", temp_dir);
    }
    MICROGPT_RETURN_IF_ERROR(write(temp_dir));
    // The files' names durable before the name of the directory holding
    // them changes.
    if (::fsync(lock.get()) != 0) {
      return ErrnoError(errno, "cannot fsync", temp_dir);
    }
    return RenameNoReplace(temp_dir, final_dir);
  }();
  if (!status.ok()) {
    std::error_code ignored;
    std::filesystem::remove_all(temp_dir, ignored);
    return status;
  }
  return FsyncDirectory(model_dir);
}

absl::Status DeleteVersionDirectory(const std::string& model_dir,
                                    int64_t version) {
  const std::string dir = JoinPath(model_dir, absl::StrCat(version));
  const std::string temp =
      JoinPath(model_dir, TemporaryName(absl::StrCat("delete-", version)));
  // Locked across the rename (the lock follows the directory), so that a
  // concurrent cleaner does not remove it under us.
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
  return RemoveAll(temp);
}

}  // namespace microgpt
