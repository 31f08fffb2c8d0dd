// CheckpointStore: versioned checkpoints on disk in TensorFlow Serving's
// base-path layout, <root>/<model_name>/<version>/ with version = training
// step:
//   model.safetensors, optimizer.safetensors, manifest.json
// manifest.json lists each file's size and SHA-256. A version is written into a
// non-numeric temporary directory, every file fsynced, renamed into place and
// the parent fsynced, so a reader never sees a partial version. Readers only
// look at numeric directory names.
#ifndef MICROGPT_COMMON_CHECKPOINT_STORE_H_
#define MICROGPT_COMMON_CHECKPOINT_STORE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/checkpoint.h"

namespace microgpt {

// Model names: 1 to 64 characters of [A-Za-z0-9._-], starting with a letter or
// digit (so never a path separator, "." or ".."). INVALID_ARGUMENT otherwise.
absl::Status ValidateModelName(absl::string_view name);

class CheckpointStore {
 public:
  explicit CheckpointStore(std::string root);

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

  // Removes temporary directories left by a publisher that died mid-way.
  absl::Status RemoveTemporaryDirectories() const;

 private:
  std::string root_;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_CHECKPOINT_STORE_H_
