// CheckpointStore's leases and retention (see checkpoint_store.h): which
// versions readers hold, and deleting the others.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/checkpoint_dir.h"
#include "common/checkpoint_store.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace microgpt {
namespace {

// Under the root: one lease file per reader (not a valid model name).
constexpr absl::string_view kLeaseDir = ".leases";
constexpr int64_t kMaxLeaseBytes = 1 << 20;

}  // namespace

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
  const std::string temp = JoinPath(lease_dir, TemporaryName(holder));
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
    if (IsTemporaryName(name)) continue;  // being written
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
    absl::Status status =
        DeleteVersionDirectory(JoinPath(root_, model_name), versions[i]);
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
