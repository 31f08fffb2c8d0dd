#include "trainer/trainer_server.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/checkpoint_store.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "trainer/trainer_service.h"

namespace microgpt {

absl::Status RunTrainerServer(const TrainerServerOptions& options) {
  namespace fs = std::filesystem;
  if (options.checkpoint_root.empty()) {
    return absl::InvalidArgumentError("--checkpoint_root is required");
  }
  std::error_code error;
  fs::create_directories(options.checkpoint_root, error);
  if (error || !fs::is_directory(options.checkpoint_root)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--checkpoint_root \"", options.checkpoint_root,
                     "\" is not a usable directory",
                     error ? absl::StrCat(": ", error.message()) : ""));
  }
  if (!options.data_root.empty() && !fs::is_directory(options.data_root)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--data_root \"", options.data_root, "\" is not a directory"));
  }
  // Absolute, so that reported checkpoint paths mean something to clients.
  const std::string checkpoint_root =
      fs::absolute(options.checkpoint_root, error).lexically_normal().string();
  const CheckpointStore store(checkpoint_root);
  MICROGPT_RETURN_IF_ERROR(store.RemoveTemporaryDirectories());
  MICROGPT_RETURN_IF_ERROR(store.CreateLeaseDirectory());

  TrainerServiceOptions service_options;
  service_options.checkpoint_root = checkpoint_root;
  service_options.data_root = options.data_root;
  service_options.retention = options.retention;
  service_options.limits = options.limits;
  service_options.observer = options.observer;
  TrainerServiceImpl service(std::move(service_options));
  ServerRunner runner(options.server);
  runner.AddService(&service, v1::Trainer::service_full_name());
  MICROGPT_RETURN_IF_ERROR(runner.Start("microgpt-trainer"));
  runner.SetServing(true);  // the Trainer API is ready as soon as it listens
  LogInfo(absl::StrCat("checkpoint root ", checkpoint_root, ", data root ",
                       options.data_root.empty()
                           ? "(none: inline datasets only)"
                           : options.data_root));
  runner.WaitForShutdown([&service] { service.Shutdown(); });
  return absl::OkStatus();
}

}  // namespace microgpt
