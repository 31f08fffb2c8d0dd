#include "common/checkpoint_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint_dir.h"
#include "common/file_io.h"
#include "common/status_macros.h"

namespace microgpt {
namespace {

constexpr size_t kMaxModelNameLength = 64;

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

// Reads `file_name` of a version directory, verified against its manifest.
// `missing` is the error when the manifest does not list it.
absl::StatusOr<std::string> ReadVerified(const std::string& dir,
                                         int64_t version,
                                         absl::string_view file_name,
                                         absl::StatusCode missing) {
  if (!IsDirectory(dir)) {
    return absl::NotFoundError(absl::StrCat("no version ", version, " (", dir,
                                            " is not a directory)"));
  }
  absl::StatusOr<Manifest> manifest = ReadManifest(dir, version);
  if (!manifest.ok()) {
    // A version without its manifest is damaged, not absent.
    return absl::DataLossError(manifest.status().message());
  }
  absl::StatusOr<std::string> bytes =
      ReadVerifiedFile(dir, *manifest, file_name);
  if (absl::IsNotFound(bytes.status())) {
    return absl::Status(missing, bytes.status().message());
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

  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back(kModelFile, SerializeModel(model));
  if (optimizer != nullptr) {
    files.emplace_back(kOptimizerFile, SerializeOptimizer(*optimizer, layout));
  }
  for (const auto& [name, bytes] : files) {
    if (bytes.empty()) {
      return absl::InternalError(absl::StrCat("cannot serialise ", name));
    }
  }
  for (const auto& [name, bytes] : extra_files) {
    if (name == kModelFile || name == kOptimizerFile) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", name, "\" cannot be an extra file"));
    }
    files.emplace_back(name, bytes);
  }
  MICROGPT_ASSIGN_OR_RETURN(const Manifest manifest,
                            MakeManifest(version, files));

  const absl::Status status = PublishVersionDirectory(
      JoinPath(root_, model_name), version,
      [&](const std::string& temp_dir) -> absl::Status {
        for (const auto& [name, bytes] : files) {
          MICROGPT_RETURN_IF_ERROR(
              WriteFileSynced(JoinPath(temp_dir, name), bytes));
        }
        return WriteFileSynced(JoinPath(temp_dir, kManifestFile),
                               SerializeManifest(manifest));
      });
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "model \"", model_name, "\" already has version ", version));
  }
  return status;
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
    if (ParseVersionName(name, &version) &&
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
    first_error.Update(
        RemoveOrphanedTemporaryDirectories(JoinPath(root_, model)));
  }
  return first_error;
}

}  // namespace microgpt
