#include "trainer/checkpoint_listing.h"

#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "nlohmann/json.hpp"

namespace microgpt {
namespace {

// A safetensors header of a microgpt model is small; anything larger than this
// is not one of ours.
constexpr uint64_t kMaxHeaderBytes = 16 << 20;

// {step, loss} from the "__metadata__" of a safetensors file's JSON header:
// 8 bytes of little-endian header length, then the header.
absl::StatusOr<VersionMetadata> ReadHeaderMetadata(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  unsigned char size_bytes[8];
  if (!file.read(reinterpret_cast<char*>(size_bytes), sizeof(size_bytes))) {
    return absl::DataLossError(absl::StrCat(path, " is truncated"));
  }
  uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = (size << 8) | size_bytes[i];
  if (size == 0 || size > kMaxHeaderBytes) {
    return absl::DataLossError(
        absl::StrCat(path, ": implausible header size ", size));
  }
  std::string header(size, '\0');
  if (!file.read(header.data(), static_cast<std::streamsize>(size))) {
    return absl::DataLossError(absl::StrCat(path, " is truncated"));
  }
  const nlohmann::json json = nlohmann::json::parse(header, nullptr,
                                                    /*allow_exceptions=*/false);
  const auto metadata =
      json.is_object() ? json.find("__metadata__") : json.end();
  if (!json.is_object() || metadata == json.end() || !metadata->is_object()) {
    return absl::DataLossError(absl::StrCat(path, " has no metadata"));
  }
  VersionMetadata result;
  const auto step = metadata->find("microgpt.step");
  const auto loss = metadata->find("microgpt.loss");
  if (step == metadata->end() || !step->is_string() ||
      !absl::SimpleAtoi(step->get<std::string>(), &result.step) ||
      loss == metadata->end() || !loss->is_string() ||
      !absl::SimpleAtod(loss->get<std::string>(), &result.loss)) {
    return absl::DataLossError(
        absl::StrCat(path, " has no step or loss metadata"));
  }
  return result;
}

}  // namespace

absl::StatusOr<VersionMetadata> ReadVersionMetadata(
    const CheckpointStore& store, absl::string_view model, int64_t version) {
  auto header = ReadHeaderMetadata(
      absl::StrCat(store.VersionPath(model, version), "/model.safetensors"));
  if (header.ok()) return header;
  auto checkpoint = store.LoadModel(model, version);
  if (!checkpoint.ok()) return checkpoint.status();
  return VersionMetadata{checkpoint->step, checkpoint->loss};
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
