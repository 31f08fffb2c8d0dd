// ServerRunner: what every microgpt server shares. It serves the given
// services plus grpc.health.v1 and server reflection (v1 and v1alpha, which
// resolve every listed service, health included), listens on host:port
// (port 0 picks a free one, which it prints), and on SIGTERM or SIGINT drains:
// health turns NOT_SERVING, new calls are refused, calls in flight get a grace
// period to finish.
//
//   InstallShutdownSignalHandlers();   // server/shutdown_signals.h
//   ServerRunner runner(options);
//   runner.AddService(&service, v1::Generator::service_full_name());
//   MICROGPT_RETURN_IF_ERROR(runner.Start("microgpt-generator"));
//   runner.WaitForShutdown();
#ifndef MICROGPT_SERVER_SERVER_RUNNER_H_
#define MICROGPT_SERVER_SERVER_RUNNER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/reflection_service.h"
#include "server/security.h"

namespace microgpt {

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0 = pick a free port
  absl::Duration shutdown_grace = absl::Seconds(10);
  // Largest message received; a larger request fails with
  // RESOURCE_EXHAUSTED before any handler runs.
  int max_message_bytes = 4 << 20;
  // Connections are closed (GOAWAY) after about this long, so clients
  // reconnect and re-resolve and new replicas get their share of calls. Zero
  // or less: never. Calls in flight then get max_connection_age_grace.
  absl::Duration max_connection_age = absl::ZeroDuration();
  absl::Duration max_connection_age_grace = absl::Seconds(30);
  // TLS and the bearer token (server/security.h); default: plaintext, open.
  ServerSecurity security;
};

class ServerRunner {
 public:
  explicit ServerRunner(ServerOptions options);
  ~ServerRunner();

  // Registers a service (sync or callback API) and its fully qualified name,
  // under which grpc.health.v1 reports it. Call before Start.
  void AddService(grpc::Service* service, std::string health_name);

  // Builds and starts the server and prints "<name> listening on HOST:PORT".
  // UNAVAILABLE naming the address when it cannot be bound, also when another
  // process listens on it (no SO_REUSEPORT sharing); INVALID_ARGUMENT for bad
  // options.
  absl::Status Start(absl::string_view name);

  int port() const { return port_; }
  grpc::Server* server() { return server_.get(); }

  // Health of the whole server ("") and of every added service's name.
  void SetServing(bool serving);

  // Blocks until SIGTERM or SIGINT (once InstallShutdownSignalHandlers has
  // run) or RequestShutdown(), then turns health
  // NOT_SERVING, calls on_drain, shuts the server down with the grace period
  // as deadline and waits for it.
  void WaitForShutdown(std::function<void()> on_drain = nullptr);

  // Makes WaitForShutdown return (thread-safe); for tests and admin paths.
  void RequestShutdown();

 private:
  ServerOptions options_;
  std::vector<grpc::Service*> services_;
  std::vector<std::string> health_names_;
  std::unique_ptr<ReflectionServices> reflection_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> shutdown_requested_{false};
};

}  // namespace microgpt

#endif  // MICROGPT_SERVER_SERVER_RUNNER_H_
