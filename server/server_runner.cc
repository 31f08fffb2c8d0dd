#include "server/server_runner.h"

#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/shutdown_signals.h"

namespace microgpt {
ServerRunner::ServerRunner(ServerOptions options)
    : options_(std::move(options)) {}

ServerRunner::~ServerRunner() {
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
    server_->Wait();
  }
}

void ServerRunner::AddService(grpc::Service* service, std::string health_name) {
  services_.push_back(service);
  health_names_.push_back(std::move(health_name));
}

absl::Status ServerRunner::Start(absl::string_view name) {
  if (options_.max_message_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the max message size must be positive, got ",
                     options_.max_message_bytes));
  }
  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's default health service serialises its messages without the C++
  // generated code; naming its descriptor here links health.pb.cc in, which
  // puts grpc/health/v1/health.proto into the pool that reflection serves.
  std::vector<std::string> reflected = health_names_;
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  reflected.push_back(grpc::health::v1::Health::service_full_name());
  reflection_ = std::make_unique<ReflectionServices>(std::move(reflected));
  if (absl::Status status = reflection_->CheckDescriptors(); !status.ok()) {
    return status;
  }
  grpc::ServerBuilder builder;
  const std::string address =
      absl::StrCat(options_.host.find(':') != std::string::npos
                       ? absl::StrCat("[", options_.host, "]")
                       : options_.host,
                   ":", options_.port);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options_.security);
  if (!credentials.ok()) return credentials.status();
  builder.AddListeningPort(address, *credentials, &port_);
  // gRPC sets SO_REUSEPORT by default, so a second server on a busy port
  // would start and silently take a share of its calls (a stale process,
  // another user's server). Without it the bind fails.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Only what clients send is limited: what the services send is bounded by
  // their own code (a token, a checkpoint chunk of at most 1 MiB), and a
  // receive limit lowered for small requests must not break downloads.
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  if (options_.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_MS,
        static_cast<int>(std::min<int64_t>(
            absl::ToInt64Milliseconds(options_.max_connection_age),
            INT32_MAX)));
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
        static_cast<int>(std::min<int64_t>(
            absl::ToInt64Milliseconds(options_.max_connection_age_grace),
            INT32_MAX)));
  }
  for (grpc::Service* service : services_) builder.RegisterService(service);
  builder.RegisterService(reflection_->v1());
  builder.RegisterService(reflection_->v1alpha());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    server_.reset();
    return absl::UnavailableError(
        absl::StrCat(name, ": cannot listen on ", address,
                     " (is another server using that port?)"));
  }
  SetServing(false);
  std::printf("%s listening on %s:%d\n", std::string(name).c_str(),
              options_.host.c_str(), port_);
  std::fflush(stdout);
  LogInfo(absl::StrCat(name, " listening on ", options_.host, ":", port_));
  return absl::OkStatus();
}

void ServerRunner::SetServing(bool serving) {
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  // Named explicitly: SetServingStatus(bool) only updates names already known.
  health->SetServingStatus("", serving);
  for (const std::string& name : health_names_) {
    health->SetServingStatus(name, serving);
  }
}

void ServerRunner::WaitForShutdown(std::function<void()> on_drain) {
  while (!shutdown_requested_.load() && !ShutdownSignalReceived()) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  if (ShutdownSignalReceived()) LogInfo("shutdown signal received, draining");
  SetServing(false);
  if (server_ != nullptr) {
    if (grpc::HealthCheckServiceInterface* health =
            server_->GetHealthCheckService()) {
      health->Shutdown();  // every health check answers NOT_SERVING from now on
    }
  }
  if (on_drain) on_drain();
  if (server_ != nullptr) {
    server_->Shutdown(
        absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
    server_->Wait();
    server_.reset();
  }
  LogInfo("server stopped");
}

void ServerRunner::RequestShutdown() { shutdown_requested_ = true; }

}  // namespace microgpt
