#include "trainer/checkpoint_listing.h"

#include "absl/strings/str_cat.h"
#include "common/checkpoint_dir.h"
#include "common/file_io.h"
#include "common/log.h"
#include "server/dataset_format_proto.h"

namespace microgpt {

absl::StatusOr<ModelRecord> ReadVersionMetadata(const CheckpointStore& store,
                                                absl::string_view model,
                                                int64_t version) {
  absl::StatusOr<ModelRecord> header =
      ReadModelRecord(JoinPath(store.VersionPath(model, version), kModelFile));
  if (header.ok()) return header;
  auto checkpoint = store.LoadModel(model, version);
  if (!checkpoint.ok()) return checkpoint.status();
  return ModelRecord{checkpoint->step, checkpoint->loss, checkpoint->format,
                     checkpoint->val_loss};
}

v1::CheckpointInfo CheckpointInfoOf(const CheckpointStore& store,
                                    absl::string_view model, int64_t version,
                                    const ModelRecord& record) {
  v1::CheckpointInfo info;
  info.set_model(std::string(model));
  info.set_version(version);
  info.set_step(record.step);
  info.set_loss(record.loss);
  if (record.val_loss.has_value()) info.set_val_loss(*record.val_loss);
  info.set_format(ToProto(record.format));
  info.set_path(store.VersionPath(model, version));
  return info;
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
      checkpoints.push_back(CheckpointInfoOf(store, name, version, *metadata));
    }
  }
  return checkpoints;
}

}  // namespace microgpt
