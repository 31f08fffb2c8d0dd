// MetricsEndpoint: a Prometheus /metrics HTTP endpoint (prometheus-cpp's
// civetweb Exposer) serving a server's Collectable and the process metrics
// (server/process_metrics.h), with bind errors as a Status rather than an
// exception. Header-only so that the server library itself
// does not depend on prometheus-cpp; targets that include it link
// prometheus-cpp::pull.
//
//   MICROGPT_ASSIGN_OR_RETURN(auto endpoint,
//                             MetricsEndpoint::Start("0.0.0.0:9090", metrics));
//   endpoint->port();  // the bound port (useful with port 0)
#ifndef MICROGPT_SERVER_METRICS_ENDPOINT_H_
#define MICROGPT_SERVER_METRICS_ENDPOINT_H_

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "server/process_metrics.h"

namespace microgpt {

class MetricsEndpoint {
 public:
  // Listens on `address` ("host:port"; port 0 picks a free one) and serves
  // `collectable` and the process metrics of `component` ("trainer",
  // "generator") at /metrics, from civetweb's threads, until destroyed.
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& address,
      std::shared_ptr<prometheus::Collectable> collectable,
      const std::string& component) {
    // The Exposer keeps weak pointers: the endpoint owns what it serves.
    auto process = std::make_shared<ProcessMetrics>(component);
    try {
      auto exposer = std::make_unique<prometheus::Exposer>(address, 2);
      exposer->RegisterCollectable(collectable);
      exposer->RegisterCollectable(process);
      const std::vector<int> ports = exposer->GetListeningPorts();
      const int port = ports.empty() ? 0 : ports.front();
      return std::unique_ptr<MetricsEndpoint>(
          new MetricsEndpoint(std::move(exposer), std::move(collectable),
                              std::move(process), port));
    } catch (const std::exception& error) {
      return absl::UnavailableError(absl::StrCat("cannot serve metrics on ",
                                                 address, ": ", error.what()));
    }
  }

  int port() const { return port_; }

 private:
  MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer,
                  std::shared_ptr<prometheus::Collectable> collectable,
                  std::shared_ptr<ProcessMetrics> process, int port)
      : collectable_(std::move(collectable)),
        process_(std::move(process)),
        exposer_(std::move(exposer)),
        port_(port) {}

  std::shared_ptr<prometheus::Collectable> collectable_;
  std::shared_ptr<ProcessMetrics> process_;
  std::unique_ptr<prometheus::Exposer> exposer_;  // stopped first
  int port_;
};

// "host:port" for a --metrics_port flag: all interfaces.
inline std::string MetricsAddress(int port) {
  return absl::StrCat("0.0.0.0:", port);
}

}  // namespace microgpt

#endif  // MICROGPT_SERVER_METRICS_ENDPOINT_H_
