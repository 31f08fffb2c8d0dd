#include "generator/generator_server.h"

#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"

namespace microgpt {
namespace {

ModelManagerOptions ManagerOptions(const GeneratorServerOptions& options) {
  ModelManagerOptions manager;
  manager.root = options.trainer_address.empty() ? options.checkpoint_root
                                                 : options.cache_dir;
  manager.versions_to_keep = options.versions_to_keep;
  // Reading the trainer's own root: lease the versions served so that its
  // retention keeps them. The follow-mode cache is ours alone.
  if (options.trainer_address.empty()) {
    manager.lease_holder = DefaultLeaseHolder();
  }
  return manager;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GeneratorServer>> GeneratorServer::Create(
    GeneratorServerOptions options) {
  std::error_code error;
  if (!options.trainer_address.empty() || !options.cache_dir.empty()) {
    if (options.trainer_address.empty() || options.cache_dir.empty() ||
        !options.checkpoint_root.empty()) {
      return absl::InvalidArgumentError(
          "follow mode needs both trainer and cache_dir, and no "
          "checkpoint_root");
    }
    std::filesystem::create_directories(options.cache_dir, error);
    if (!std::filesystem::is_directory(options.cache_dir, error)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cache_dir '", options.cache_dir, "' is not a directory"));
    }
  } else if (options.checkpoint_root.empty() ||
             !std::filesystem::is_directory(options.checkpoint_root, error)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint_root '", options.checkpoint_root, "' is not a directory"));
  }
  if (options.versions_to_keep < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "versions_to_keep must be >= 1, got ", options.versions_to_keep));
  }
  const SchedulerOptions& scheduler = options.scheduler;
  if (scheduler.max_batch < 1 || scheduler.max_queued < 0 ||
      scheduler.num_threads < 1 || scheduler.buffer_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch (", scheduler.max_batch, ") and threads (",
                     scheduler.num_threads, ") must be >= 1 and max_queued (",
                     scheduler.max_queued, ") >= 0"));
  }
  if (options.service.max_tokens_limit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens_limit must be >= 1, got ",
                     options.service.max_tokens_limit));
  }
  return std::unique_ptr<GeneratorServer>(
      new GeneratorServer(std::move(options)));
}

GeneratorServer::GeneratorServer(GeneratorServerOptions options)
    : options_(std::move(options)),
      models_([this] {
        ModelManagerOptions manager = ManagerOptions(options_);
        manager.on_load = [this](const ServableModel&) {
          runner_.SetServing(true);
        };
        return manager;
      }()),
      scheduler_([this] {
        SchedulerOptions scheduler = options_.scheduler;
        if (!options_.metrics_address.empty()) {
          scheduler.on_step = [this](int batch_size) {
            metrics_->OnStep(batch_size);
          };
        }
        return scheduler;
      }()),
      service_(&models_, &scheduler_, options_.service),
      runner_(options_.server) {
  if (!options_.metrics_address.empty()) {
    metrics_ =
        std::make_unique<GeneratorMetrics>(&models_, &scheduler_, &service_);
    service_.SetObserver(metrics_.get());
  }
}

int GeneratorServer::metrics_port() const {
  return metrics_endpoint_ != nullptr ? metrics_endpoint_->port() : 0;
}

GeneratorServer::~GeneratorServer() {
  metrics_endpoint_.reset();  // no scrape reads the parts from here on
  follower_.reset();          // it calls into models_; stopped first
  models_.Stop();             // no health flips while the runner goes away
}

absl::Status GeneratorServer::Start() {
  if (metrics_ != nullptr) {
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
        MetricsEndpoint::Start(options_.metrics_address,
                               metrics_->collectable(), "generator");
    if (!endpoint.ok()) return endpoint.status();
    metrics_endpoint_ = *std::move(endpoint);
    LogInfo(absl::StrCat("metrics on http://", options_.metrics_address,
                         "/metrics (port ", metrics_endpoint_->port(), ")"));
  }
  scheduler_.Start();
  runner_.AddService(&service_, v1::Generator::service_full_name());
  if (absl::Status status = runner_.Start("microgpt-generator"); !status.ok()) {
    return status;
  }
  if (models_.num_loaded_versions() > 0) runner_.SetServing(true);
  if (options_.poll_interval > absl::ZeroDuration()) {
    models_.StartPolling(options_.poll_interval);
  }
  if (!options_.trainer_address.empty()) {
    CheckpointFollowerOptions follower = options_.follower;
    follower.trainer_address = options_.trainer_address;
    follower.cache_dir = options_.cache_dir;
    follower.keep_versions = options_.versions_to_keep;
    follower.on_new_version = [this] {
      if (absl::Status status = models_.PollOnce(); !status.ok()) {
        LogWarning(absl::StrCat("cannot scan the cache: ", status.ToString()));
      }
    };
    follower_ = std::make_unique<CheckpointFollower>(std::move(follower));
    if (absl::Status status = follower_->Start(); !status.ok()) return status;
  }
  return absl::OkStatus();
}

void GeneratorServer::WaitForShutdown() {
  runner_.WaitForShutdown([this] { Drain(); });
  scheduler_.Stop();
}

// Runs before the runner's Server::Shutdown, that is before any GOAWAY: gRPC
// closes a connection as soon as its last call ends after a GOAWAY, which can
// cut off the tail of a stream still on its way to a slow reader. So streams
// are drained here, while connections stay open, within the grace period:
//   - new Generate calls are refused (health is already NOT_SERVING);
//   - streams in flight run until grace - margin;
//   - then their samples end with FINISH_REASON_CANCELLED, which the clients
//     receive with an OK status;
//   - calls whose clients stopped reading are cancelled;
//   - a short linger lets the last bytes reach the clients.
void GeneratorServer::Drain() {
  if (follower_ != nullptr) follower_->Stop();
  models_.Stop();
  service_.StopAccepting();
  const int in_flight = service_.active_streams();
  if (in_flight == 0) return;
  LogInfo(absl::StrCat("draining ", in_flight, " streams"));
  const absl::Duration grace = options_.server.shutdown_grace;
  const absl::Duration margin = std::min(absl::Seconds(1), grace / 5);
  if (!service_.WaitForStreams(grace - margin)) {
    LogInfo(absl::StrCat("grace period nearly over: ending the samples of ",
                         service_.active_streams(), " streams as cancelled"));
    scheduler_.Stop();
    if (!service_.WaitForStreams(margin / 2)) {
      LogWarning(absl::StrCat("cancelling ", service_.active_streams(),
                              " streams whose clients stopped reading"));
      service_.CancelStreams();
      service_.WaitForStreams(margin / 4);
    }
  }
  absl::SleepFor(std::min(absl::Milliseconds(100), margin / 4));
}

}  // namespace microgpt
