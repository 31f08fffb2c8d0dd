// CheckpointStore: versioned checkpoints on disk in TensorFlow Serving's
// base-path layout, <root>/<model_name>/<version>/ with version = training
// step. Each version directory is in the format of common/checkpoint_dir.h
// (model.safetensors, optimizer.safetensors, extra files, manifest.json with
// each file's size and SHA-256), published atomically through a locked
// temporary directory, so a reader never sees a partial version; readers only
// look at numeric directory names. Publishing and verified loading live in
// checkpoint_store.cc, leases and retention in checkpoint_retention.cc.
//
// Crash safety: RemoveTemporaryDirectories deletes the temporary directories
// no live process holds (a publisher or deleter that died), and can run at
// any time, in any process.
//
// Retention: ApplyRetention deletes versions older than the newest
// RetentionPolicy::keep_versions, each renamed to a hidden temporary name
// first (a reader sees it whole or not at all), except versions named in a
// fresh lease. Readers that serve straight from the root (generators in
// shared-directory mode) keep a lease, <root>/.leases/<holder>, a JSON object
// {"holder": "...", "models": {"<model>": [<version>, ...]}} they rewrite
// atomically at least every lease_ttl; a lease whose file is older than
// lease_ttl (by mtime) protects nothing and is deleted.
#ifndef MICROGPT_COMMON_CHECKPOINT_STORE_H_
#define MICROGPT_COMMON_CHECKPOINT_STORE_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/checkpoint.h"

namespace microgpt {

// Model names: 1 to 64 characters of [A-Za-z0-9._-], starting with a letter or
// digit (so never a path separator, "." or ".."). INVALID_ARGUMENT otherwise.
absl::Status ValidateModelName(absl::string_view name);

// Which versions ApplyRetention deletes.
struct RetentionPolicy {
  // Versions kept per model, the newest ones; 0 keeps every version.
  int64_t keep_versions = 0;
  // A lease not rewritten for this long no longer protects its versions. It
  // must exceed the readers' refresh interval (the generator's is 10 s).
  absl::Duration lease_ttl = absl::Minutes(1);
};

class CheckpointStore {
 public:
  explicit CheckpointStore(std::string root, RetentionPolicy retention = {});

  const std::string& root() const { return root_; }
  std::string VersionPath(absl::string_view model_name, int64_t version) const;

  // Publishes a version atomically. ALREADY_EXISTS if it is there already;
  // the optimizer state is optional (a model-only export).
  // `extra_files` (name, bytes) go into the version too, listed in its
  // manifest (the trainer's loss.csv); names are plain file names other than
  // the store's own.
  absl::Status Publish(
      absl::string_view model_name, int64_t version,
      const ModelCheckpoint& model, const OptimizerCheckpoint* optimizer,
      const ParameterLayout& layout,
      const std::vector<std::pair<std::string, std::string>>& extra_files = {});

  // Model directories under the root (valid names only), sorted.
  absl::StatusOr<std::vector<std::string>> ListModels() const;
  // Published versions of a model, ascending. NOT_FOUND if the model has no
  // directory.
  absl::StatusOr<std::vector<int64_t>> ListVersions(
      absl::string_view model_name) const;

  // Loads and verifies a version against its manifest (sizes and SHA-256):
  // DATA_LOSS on a mismatch, truncation or corruption, NOT_FOUND if absent.
  absl::StatusOr<ModelCheckpoint> LoadModel(absl::string_view model_name,
                                            int64_t version) const;
  // Reads an extra file of a version, verified against the manifest:
  // NOT_FOUND when the manifest does not list it, DATA_LOSS as above.
  absl::StatusOr<std::string> LoadExtraFile(absl::string_view model_name,
                                            int64_t version,
                                            absl::string_view file_name) const;
  absl::StatusOr<OptimizerCheckpoint> LoadOptimizer(
      absl::string_view model_name, int64_t version,
      const ParameterLayout& layout) const;

  // Removes the temporary directories of every model that no live process
  // holds (see "Crash safety" above): left by a publisher, or a retention
  // pass, that died mid-way.
  absl::Status RemoveTemporaryDirectories() const;

  // Writes the lease of `holder` (a name valid as a model name) naming, per
  // model, the versions it serves; replaces its previous lease atomically.
  absl::Status WriteLease(
      absl::string_view holder,
      const std::map<std::string, std::vector<int64_t>>& versions) const;
  // Creates <root>/.leases if missing, owned by this process's user, so that
  // readers given only that directory writable (a Kubernetes subPath mount,
  // which would otherwise create it owned by root) can lease.
  absl::Status CreateLeaseDirectory() const;
  // Removes the lease of `holder` (OK when it has none).
  absl::Status RemoveLease(absl::string_view holder) const;
  // Versions of `model` named by leases younger than the policy's lease_ttl.
  // FAILED_PRECONDITION when a young lease cannot be read or parsed: its
  // holder's versions are unknown, so nothing may be deleted.
  absl::StatusOr<std::set<int64_t>> LeasedVersions(
      absl::string_view model_name) const;

  // Applies the retention policy to `model`: deletes every version but the
  // newest keep_versions, skipping leased ones, and drops expired leases.
  // Returns the versions deleted (none when keep_versions is 0). A version
  // that cannot be deleted is reported in the error after the others are.
  absl::StatusOr<std::vector<int64_t>> ApplyRetention(
      absl::string_view model_name) const;

  const RetentionPolicy& retention() const { return retention_; }

 private:
  std::string root_;
  RetentionPolicy retention_;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_CHECKPOINT_STORE_H_
