// GeneratorServer: the generator process assembled from its parts (the model
// manager polling the checkpoint root, the scheduler's compute threads, the
// gRPC service, and the shared ServerRunner for health, reflection and
// drain). main.cc maps flags to GeneratorServerOptions and runs it; tests
// start one in-process.
//
// Health is NOT_SERVING until the first model version is loaded. On
// shutdown (SIGTERM, SIGINT or RequestShutdown) health turns NOT_SERVING, the
// poller stops, new Generate calls are refused and streams in flight may
// finish within the grace period; shortly before it ends, every sample still
// running ends with FINISH_REASON_CANCELLED, so clients see a clean end of
// stream rather than a transport error. Only calls whose clients stopped
// reading are cancelled. See Drain() in the .cc for why this happens before
// the gRPC server's own shutdown.
//
//   MICROGPT_ASSIGN_OR_RETURN(auto server, GeneratorServer::Create(options));
//   MICROGPT_RETURN_IF_ERROR(server->Start());
//   server->WaitForShutdown();
#ifndef MICROGPT_GENERATOR_GENERATOR_SERVER_H_
#define MICROGPT_GENERATOR_GENERATOR_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "generator/checkpoint_follower.h"
#include "generator/generator_metrics.h"
#include "generator/generator_service.h"
#include "generator/model_manager.h"
#include "generator/scheduler.h"
#include "server/metrics_endpoint.h"
#include "server/server_runner.h"

namespace microgpt {

struct GeneratorServerOptions {
  ServerOptions server;
  std::string checkpoint_root;  // must be an existing directory
  // Follow mode instead of checkpoint_root (exactly one of the two): follow
  // the trainer at this address (Trainer.WatchCheckpoints), download each
  // version into cache_dir (created if missing) and serve from there. See
  // generator/checkpoint_follower.h.
  std::string trainer_address;
  std::string cache_dir;
  CheckpointFollowerOptions follower;  // backoff etc.; address/dir set here
  // How often the root is scanned for new versions. Zero or less: never in
  // the background (tests call models().PollOnce()).
  absl::Duration poll_interval = absl::Seconds(2);
  int versions_to_keep = 2;
  SchedulerOptions scheduler;
  GeneratorServiceOptions service;
  // Prometheus /metrics endpoint, "host:port" (port 0 picks a free one);
  // empty: none. See generator/generator_metrics.h for the series.
  std::string metrics_address;
};

class GeneratorServer {
 public:
  // INVALID_ARGUMENT when checkpoint_root is not a directory or an option is
  // out of range.
  static absl::StatusOr<std::unique_ptr<GeneratorServer>> Create(
      GeneratorServerOptions options);
  ~GeneratorServer();  // stops everything; in-flight calls are cancelled

  // Starts the compute threads, the server (health NOT_SERVING) and the
  // poller, whose first scan runs at once. UNAVAILABLE when the address
  // cannot be bound.
  absl::Status Start();

  int port() const { return runner_.port(); }
  // The metrics endpoint's port once started; 0 without one.
  int metrics_port() const;

  // Blocks until SIGTERM, SIGINT or RequestShutdown(), then drains (see the
  // top of this file) and returns once the server has stopped.
  void WaitForShutdown();
  // Thread-safe.
  void RequestShutdown() { runner_.RequestShutdown(); }

  // The parts, for tests and metrics: ModelManager::loads() and
  // failed_loads(), Scheduler::stats(), GeneratorServiceImpl::active_streams().
  ModelManager& models() { return models_; }
  Scheduler& scheduler() { return scheduler_; }
  GeneratorServiceImpl& service() { return service_; }

 private:
  explicit GeneratorServer(GeneratorServerOptions options);
  void Drain();

  const GeneratorServerOptions options_;
  // Before the parts it observes, so that their threads never outlive it;
  // the endpoint (which reads the parts) is stopped first, in the destructor.
  std::unique_ptr<GeneratorMetrics> metrics_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  // Declared before the runner so that they outlive the calls it serves.
  ModelManager models_;
  Scheduler scheduler_;
  GeneratorServiceImpl service_;
  ServerRunner runner_;
  std::unique_ptr<CheckpointFollower> follower_;  // follow mode only
};

}  // namespace microgpt

#endif  // MICROGPT_GENERATOR_GENERATOR_SERVER_H_
