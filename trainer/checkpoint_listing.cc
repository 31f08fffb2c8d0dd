#include "trainer/checkpoint_listing.h"

#include "absl/strings/str_cat.h"
#include "common/checkpoint_dir.h"
#include "common/file_io.h"
#include "common/log.h"

namespace microgpt {

absl::StatusOr<ModelStepAndLoss> ReadVersionMetadata(
    const CheckpointStore& store, absl::string_view model, int64_t version) {
  absl::StatusOr<ModelStepAndLoss> header = ReadModelStepAndLoss(
      JoinPath(store.VersionPath(model, version), kModelFile));
  if (header.ok()) return header;
  auto checkpoint = store.LoadModel(model, version);
  if (!checkpoint.ok()) return checkpoint.status();
  return ModelStepAndLoss{checkpoint->step, checkpoint->loss};
}

absl::StatusOr<std::vector<v1::CheckpointInfo>> ListCheckpointInfos(
    const CheckpointStore& store, absl::string_view model) {
  std::vector<std::string> models;
  if (model.empty()) {
    auto listed = store.ListModels();
    if (!listed.ok()) {
      if (absl::IsNotFound(listed.status()))
        return std::vector<v1::CheckpointInfo>{};
      return listed.status();
    }
    models = *std::move(listed);
  } else {
    if (absl::Status status = ValidateModelName(model); !status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("model: ", status.message()));
    }
    models.emplace_back(model);
  }

  std::vector<v1::CheckpointInfo> checkpoints;
  for (const std::string& name : models) {
    auto versions = store.ListVersions(name);
    if (!versions.ok()) {
      if (absl::IsNotFound(versions.status())) continue;
      return versions.status();
    }
    for (int64_t version : *versions) {
      auto metadata = ReadVersionMetadata(store, name, version);
      if (!metadata.ok()) {
        LogWarning(absl::StrCat("skipping version ", version, " of \"", name,
                                "\": ", metadata.status().ToString()));
        continue;
      }
      v1::CheckpointInfo& info = checkpoints.emplace_back();
      info.set_model(name);
      info.set_version(version);
      info.set_step(metadata->step);
      info.set_loss(metadata->loss);
      info.set_path(store.VersionPath(name, version));
    }
  }
  return checkpoints;
}

}  // namespace microgpt
