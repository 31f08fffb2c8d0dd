// microgpt-generator: serves microgpt.v1.Generator over the checkpoints a
// trainer publishes. Flags map to GeneratorServerOptions; nothing else here.
//
//   microgpt-generator --checkpoint_root=/var/lib/microgpt/checkpoints
//   --port=50052
#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/usage.h"
#include "generator/generator_server.h"
#include "generator/request_validation.h"
#include "server/metrics_endpoint.h"
#include "server/security_flags.h"
#include "server/server_runner.h"
#include "server/shutdown_signals.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on.");
ABSL_FLAG(int, port, 50051, "Port to listen on; 0 picks a free one (printed).");
ABSL_FLAG(std::string, checkpoint_root, "",
          "Checkpoint root to serve (<root>/<model>/<version>/), shared with "
          "the trainer. Exactly one of --checkpoint_root and --trainer.");
ABSL_FLAG(std::string, trainer, "",
          "Follow mode: the trainer's address (host:port). Each version it "
          "publishes is downloaded (verified, atomically) into --cache_dir "
          "and served; no shared volume needed.");
ABSL_FLAG(std::string, cache_dir, "",
          "Follow mode: local directory for downloaded versions (created if "
          "missing); required with --trainer.");
ABSL_FLAG(absl::Duration, max_connection_age, absl::Minutes(5),
          "Close client connections after about this long (GOAWAY; streams "
          "in flight get 30s more), so clients re-resolve and spread over "
          "new replicas. 0 = never.");
ABSL_FLAG(absl::Duration, poll_interval, absl::Seconds(2),
          "How often the checkpoint root is scanned for new versions.");
ABSL_FLAG(int, versions_to_keep, 2, "Loaded versions per model.");
ABSL_FLAG(int, max_batch, 64, "Sequences advanced together per step.");
ABSL_FLAG(int, max_queued, 1024,
          "Sequences that may wait beyond max_batch; more are refused with "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM, how long streams in flight may take to finish.");
ABSL_FLAG(int, threads, 0,
          "Compute worker threads; 0: one per core. A wide model's (n_embd >= "
          "64) batch is split across them; a narrow model's runs on one.");
ABSL_FLAG(int, metrics_port, 0,
          "Port of the Prometheus /metrics endpoint (all interfaces); 0: off.");
ABSL_FLAG(int, max_tokens_limit, microgpt::kDefaultMaxTokensLimit,
          "Largest max_tokens of a Generate request; a text model's samples "
          "(which have no block_size end) stop here when max_tokens is 0.");
ABSL_FLAG(bool, json_logs, false, "Log lines as JSON objects.");
ABSL_FLAG(int, max_message_bytes, 4 << 20,
          "Largest request accepted, in bytes; larger ones fail with "
          "RESOURCE_EXHAUSTED (a Generate request is a few KiB at most).");
ABSL_FLAG(bool, require_auth, false,
          "Require \"authorization: Bearer <token>\" on Generator calls (the "
          "token from --auth_token_file or MICROGPT_AUTH_TOKEN); health and "
          "reflection stay open.");

int main(int argc, char** argv) {
  microgpt::InstallShutdownSignalHandlers();
  // Debian's Abseil checks lock order on every Mutex acquisition (~5% of the
  // server's CPU under load); the tests and sanitizer builds keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  microgpt::InitUsage(
      "serves microgpt checkpoints: streams sampled text over gRPC "
      "(microgpt.v1.Generator), loading new versions as they are published.\n"
      "\n"
      "  microgpt-generator --checkpoint_root DIR [--port 50051 --host H]\n"
      "      [--poll_interval 2s --versions_to_keep 2 --max_batch 64 "
      "--max_queued 1024\n"
      "       --max_tokens_limit 4096 --threads 0 --shutdown_grace 10s]\n"
      "  microgpt-generator --trainer HOST:PORT --cache_dir DIR   (follow a "
      "trainer's\n"
      "      WatchCheckpoints and download each version, without a shared "
      "volume)\n"
      "\n"
      "  --require_auth (with --auth_token_file FILE or $MICROGPT_AUTH_TOKEN), "
      "--tls_cert_file,\n"
      "  --tls_key_file, --tls_client_ca_file; --metrics_port P (Prometheus "
      "/metrics), --json_logs.\n");
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::fprintf(stderr,
                 "error: unexpected argument \"%s\" (microgpt-generator takes "
                 "flags only; see --help)\n",
                 positional[1]);
    return 2;
  }
  microgpt::SetJsonLogs(absl::GetFlag(FLAGS_json_logs));

  microgpt::GeneratorServerOptions options;
  options.server.host = absl::GetFlag(FLAGS_host);
  options.server.port = absl::GetFlag(FLAGS_port);
  options.server.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  options.server.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.checkpoint_root = absl::GetFlag(FLAGS_checkpoint_root);
  options.trainer_address = absl::GetFlag(FLAGS_trainer);
  options.cache_dir = absl::GetFlag(FLAGS_cache_dir);
  options.server.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  if (options.checkpoint_root.empty() == options.trainer_address.empty()) {
    microgpt::LogError(
        "exactly one of --checkpoint_root and --trainer is required");
    return 1;
  }
  if (!options.trainer_address.empty() && options.cache_dir.empty()) {
    microgpt::LogError("--trainer needs --cache_dir");
    return 1;
  }
  if (options.trainer_address.empty() && !options.cache_dir.empty()) {
    microgpt::LogError("--cache_dir is only for --trainer");
    return 1;
  }
  options.poll_interval = absl::GetFlag(FLAGS_poll_interval);
  options.versions_to_keep = absl::GetFlag(FLAGS_versions_to_keep);
  options.scheduler.max_batch = absl::GetFlag(FLAGS_max_batch);
  options.scheduler.max_queued = absl::GetFlag(FLAGS_max_queued);
  options.service.max_tokens_limit = absl::GetFlag(FLAGS_max_tokens_limit);
  const int threads = absl::GetFlag(FLAGS_threads);
  options.scheduler.num_threads =
      threads > 0
          ? threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (absl::GetFlag(FLAGS_metrics_port) > 0) {
    options.metrics_address =
        microgpt::MetricsAddress(absl::GetFlag(FLAGS_metrics_port));
  }
  if (options.poll_interval <= absl::ZeroDuration()) {
    microgpt::LogError("--poll_interval must be positive");
    return 1;
  }

  if (absl::Status status = microgpt::SecurityFromFlags(
          absl::GetFlag(FLAGS_require_auth), &options.server.security);
      !status.ok()) {
    microgpt::LogError(status.ToString());
    return 1;
  }
  // The token authenticates the follower to the trainer in any case...
  options.follower.auth_token = options.server.security.auth_token;
  // ...but a token in the environment alone does not lock the Generator API.
  if (!absl::GetFlag(FLAGS_require_auth))
    options.server.security.auth_token.clear();
  auto server = microgpt::GeneratorServer::Create(options);
  if (!server.ok()) {
    microgpt::LogError(server.status().ToString());
    return 1;
  }
  if (absl::Status status = (*server)->Start(); !status.ok()) {
    microgpt::LogError(status.ToString());
    return 1;
  }
  (*server)->WaitForShutdown();
  return 0;
}
