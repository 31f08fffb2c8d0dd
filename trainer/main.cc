// microgpt-trainer: trains microgpt models and publishes versioned checkpoints.
//
//   microgpt-trainer train --data names.txt --model names
//       --checkpoint_root ckpt
//   microgpt-trainer serve --port 50052 --checkpoint_root ckpt
//       --data_root data --auth_token_file token
//
// serve refuses to start without a bearer token (--auth_token_file or
// $MICROGPT_AUTH_TOKEN) unless --insecure_no_auth is given: whoever reaches
// the Trainer API can run jobs on the machine and read every checkpoint.
//
// Both commands build a StartTrainingRequest (from flags, or from the wire),
// and JobOptionsFromRequest turns either into a job.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/usage.h"
#include "microgpt/v1/microgpt.pb.h"
#include "server/metrics_endpoint.h"
#include "server/security_flags.h"
#include "server/server_runner.h"
#include "server/shutdown_signals.h"
#include "trainer/local_training.h"
#include "trainer/loss_plot.h"
#include "trainer/mpi_world.h"
#include "trainer/trainer_metrics.h"
#include "trainer/trainer_server.h"
#include "trainer/training_flags.h"

// Both commands.
ABSL_FLAG(std::string, checkpoint_root, "", "Directory of published versions.");
ABSL_FLAG(bool, json_logs, false, "Log lines as JSON objects.");
ABSL_FLAG(int32_t, metrics_port, 0,
          "Port of the Prometheus /metrics endpoint (all interfaces); 0: off.");
ABSL_FLAG(int64_t, keep_versions, 0,
          "Versions kept per model: after each publish, older ones are "
          "deleted, except versions a generator serving from the checkpoint "
          "root holds a lease on. 0: keep all.");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Minutes(1),
          "A generator's lease not renewed for this long stops protecting its "
          "versions from --keep_versions (generators renew every 10 s).");
ABSL_FLAG(int64_t, max_dataset_bytes,
          microgpt::TrainingLimits().max_dataset_bytes,
          "Largest dataset, in bytes (the file, or a StartTraining request's "
          "inline documents together).");
ABSL_FLAG(int64_t, max_training_bytes,
          microgpt::TrainingLimits().max_training_bytes,
          "A job whose estimated memory (parameters, gradients, Adam state, "
          "activations of a full batch) is larger fails with "
          "RESOURCE_EXHAUSTED.");
// train
ABSL_FLAG(std::string, data, "",
          "train: dataset file, read in --format (documents: one per line).");
ABSL_FLAG(std::string, model, "", "train: model name to publish under.");
ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt,
          "train: seed of the initialisation and data order (default 42).");
ABSL_FLAG(int32_t, threads, 0,
          "train: threads of the forward and backward per process (0: by the "
          "model's size). Under mpirun, ranks x threads is the number of "
          "shards of each batch, which fixes the result.");
ABSL_FLAG(int64_t, print_every, 0,
          "train: a progress line every N steps (0: about ten per run).");
ABSL_FLAG(std::string, plot, "",
          "train: write the final version's loss curve to this SVG file.");
// serve
ABSL_FLAG(std::string, host, "0.0.0.0", "serve: address to listen on.");
ABSL_FLAG(int32_t, port, 50052,
          "serve: port to listen on (0 picks a free one).");
ABSL_FLAG(std::string, data_root, "",
          "serve: directory that StartTraining dataset paths are relative to "
          "(empty: inline datasets only).");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "serve: how long calls in flight may take to finish on shutdown.");
ABSL_FLAG(int32_t, max_message_bytes, 64 << 20,
          "serve: largest request accepted, in bytes (inline datasets, up to "
          "--max_dataset_bytes); larger ones fail with RESOURCE_EXHAUSTED.");
ABSL_FLAG(bool, insecure_no_auth, false,
          "serve: run the Trainer API without a bearer token, so anyone who "
          "can reach the port may start and cancel training and download "
          "checkpoints. Without it, serve needs --auth_token_file or "
          "MICROGPT_AUTH_TOKEN.");

namespace microgpt {
namespace {

// The commands, with the training flags both train commands take
// (trainer/training_flags.h).
const std::vector<SubcommandUsage>& Commands() {
  static const auto* commands = new std::vector<SubcommandUsage>{
      {"train",
       absl::StrCat("--data FILE --model NAME --checkpoint_root DIR\n",
                    kTrainingFlagsUsage, " --plot curve.svg --threads N]"),
       "Trains one model in this process and publishes its versions\n"
       "into the checkpoint root (a batch job; Ctrl-C or SIGTERM publishes "
       "the\nstep reached). Under `mpirun -n N`, the N ranks train it "
       "data-parallel:\neach computes its shards of every batch; rank 0 "
       "publishes."},
      {"serve",
       "--checkpoint_root DIR\n"
       "      (--auth_token_file FILE | $MICROGPT_AUTH_TOKEN | "
       "--insecure_no_auth)\n"
       "      [--data_root DIR --port P --host H --shutdown_grace 10s]",
       "Serves the Trainer API (StartTraining, WatchTraining,\n"
       "CancelTraining, ListCheckpoints, WatchCheckpoints, ...) on port 50052 "
       "by\ndefault."},
  };
  return *commands;
}

constexpr absl::string_view kCommonUsage =
    "Both: --metrics_port P (Prometheus /metrics), --json_logs,\n"
    "      --max_dataset_bytes N, --max_training_bytes N (what a job may "
    "use),\n"
    "      --keep_versions K (delete all but the newest K versions of a "
    "model\n"
    "       after each publish, never one a generator holds a lease on).";

const std::string& Usage() {
  static const std::string* usage = new std::string(ProgramUsage(
      "microgpt-trainer", "trains microgpt models.", Commands(), kCommonUsage));
  return *usage;
}

// The request the train command's flags describe.
absl::StatusOr<v1::StartTrainingRequest> RequestFromFlags() {
  v1::StartTrainingRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_dataset_path(absl::GetFlag(FLAGS_data));
  if (absl::Status status = TrainingRequestFromFlags(&request); !status.ok()) {
    return status;
  }
  if (auto seed = absl::GetFlag(FLAGS_seed)) request.set_seed(*seed);
  return request;
}

absl::StatusOr<RetentionPolicy> RetentionFromFlags() {
  RetentionPolicy retention;
  retention.keep_versions = absl::GetFlag(FLAGS_keep_versions);
  retention.lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  if (retention.keep_versions < 0) {
    return absl::InvalidArgumentError("--keep_versions must be >= 0");
  }
  if (retention.lease_ttl < absl::Seconds(15)) {
    return absl::InvalidArgumentError(
        "--lease_ttl must be at least 15s (generators renew leases every 10s)");
  }
  return retention;
}

absl::StatusOr<TrainingLimits> LimitsFromFlags() {
  TrainingLimits limits;
  limits.max_dataset_bytes = absl::GetFlag(FLAGS_max_dataset_bytes);
  limits.max_training_bytes = absl::GetFlag(FLAGS_max_training_bytes);
  if (limits.max_dataset_bytes < 1 || limits.max_training_bytes < 1) {
    return absl::InvalidArgumentError(
        "--max_dataset_bytes and --max_training_bytes must be positive");
  }
  return limits;
}

absl::Status Train(TrainingObserver* observer, ProcessGroup* group) {
  if (absl::GetFlag(FLAGS_data).empty()) {
    return absl::InvalidArgumentError("--data is required");
  }
  if (absl::GetFlag(FLAGS_checkpoint_root).empty()) {
    return absl::InvalidArgumentError("--checkpoint_root is required");
  }
  LocalTrainingOptions options;
  options.checkpoint_root = absl::GetFlag(FLAGS_checkpoint_root);
  options.print_every = absl::GetFlag(FLAGS_print_every);
  MICROGPT_ASSIGN_OR_RETURN(options.retention, RetentionFromFlags());
  MICROGPT_ASSIGN_OR_RETURN(options.limits, LimitsFromFlags());
  options.observer = observer;
  options.threads = absl::GetFlag(FLAGS_threads);
  if (options.threads < 0 || options.threads > 64) {
    return absl::InvalidArgumentError("--threads must be in [0, 64]");
  }
  options.group = group;
  MICROGPT_ASSIGN_OR_RETURN(const v1::StartTrainingRequest request,
                            RequestFromFlags());
  MICROGPT_RETURN_IF_ERROR(TrainLocally(request, options));
  const std::string plot = absl::GetFlag(FLAGS_plot);
  if (!plot.empty() && (group == nullptr || group->rank() == 0)) {
    MICROGPT_RETURN_IF_ERROR(WriteLossPlot(options.checkpoint_root,
                                           absl::GetFlag(FLAGS_model), plot));
    std::printf("loss curve: %s\n", plot.c_str());
  }
  return absl::OkStatus();
}

absl::Status Serve(TrainingObserver* observer) {
  TrainerServerOptions options;
  options.server.host = absl::GetFlag(FLAGS_host);
  options.server.port = absl::GetFlag(FLAGS_port);
  options.server.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  options.server.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.checkpoint_root = absl::GetFlag(FLAGS_checkpoint_root);
  options.data_root = absl::GetFlag(FLAGS_data_root);
  MICROGPT_ASSIGN_OR_RETURN(options.retention, RetentionFromFlags());
  MICROGPT_ASSIGN_OR_RETURN(options.limits, LimitsFromFlags());
  options.observer = observer;
  MICROGPT_RETURN_IF_ERROR(
      SecurityFromFlags(/*require_token=*/false, &options.server.security));
  // Whoever reaches the Trainer API can train on the machine and read every
  // checkpoint, so a token is required unless the operator opts out.
  const bool open = absl::GetFlag(FLAGS_insecure_no_auth);
  if (!open && options.server.security.auth_token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the Trainer API requires a bearer token: give --auth_token_file or ",
        kAuthTokenEnv, " (or --insecure_no_auth to serve without one)"));
  }
  if (open && !options.server.security.auth_token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--insecure_no_auth contradicts the bearer token from "
                     "--auth_token_file or ",
                     kAuthTokenEnv));
  }
  if (open) {
    LogWarning(
        "--insecure_no_auth: the Trainer API is open to anyone who can "
        "reach it");
  }
  return RunTrainerServer(options);
}

int Main(int argc, char** argv) {
  InstallShutdownSignalHandlers();
  // Past a file size limit (RLIMIT_FSIZE) a write then fails with EFBIG, like
  // a full disk, and the publish fails with that error instead of the
  // signal's default action killing the trainer.
  ::signal(SIGXFSZ, SIG_IGN);
  const std::string command = argc > 1 ? argv[1] : "";
  const SubcommandUsage* known = FindSubcommand(Commands(), command);
  InitUsage(known == nullptr ? Usage()
                             : SubcommandUsageText("microgpt-trainer", *known,
                                                   kCommonUsage));
  if (known == nullptr) {
    // Lets --help and friends work; anything else is a usage error.
    absl::ParseCommandLine(argc, argv);
    if (!command.empty() && command[0] != '-') {
      std::fprintf(stderr,
                   "error: unknown command \"%s\" (the commands are train "
                   "and serve)\n",
                   command.c_str());
    }
    std::fprintf(stderr, "usage: %s", Usage().c_str());
    return 2;
  }
  // The command is not a flag: parse the rest; its --help lists its flags.
  std::vector<char*> args = {argv[0]};
  args.insert(args.end(), argv + 2, argv + argc);
  std::string help;
  ScopeHelpToCommand(command, &args, &help);
  const std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  if (positional.size() > 1) {
    std::fprintf(stderr, "error: unexpected argument \"%s\"\n", positional[1]);
    return 2;
  }
  SetJsonLogs(absl::GetFlag(FLAGS_json_logs));
  // Under mpirun: data-parallel training (trainer/mpi_world.h).
  std::unique_ptr<ProcessGroup> world;
  if (LaunchedByMpirun()) {
#ifdef MICROGPT_HAVE_MPI
    if (command != "train") {
      std::fprintf(stderr, "error: only `train` runs under mpirun\n");
      return 2;
    }
    world = MpiWorld::Start();
#else
    std::fprintf(stderr,
                 "error: started by mpirun, but this microgpt-trainer was "
                 "built without MPI (install libopenmpi-dev and rebuild; "
                 "scripts/setup.sh installs it)\n");
    return 1;
#endif
  }
  std::unique_ptr<TrainerMetrics> metrics;
  // Rank 0 alone exports metrics.
  if (const int port = absl::GetFlag(FLAGS_metrics_port);
      port > 0 && (world == nullptr || world->rank() == 0)) {
    absl::StatusOr<std::unique_ptr<TrainerMetrics>> started =
        TrainerMetrics::Start(MetricsAddress(port));
    if (!started.ok()) {
      std::fprintf(stderr, "error: %s\n", started.status().ToString().c_str());
      return 1;
    }
    metrics = *std::move(started);
  }
  const absl::Status status = command == "train"
                                  ? Train(metrics.get(), world.get())
                                  : Serve(metrics.get());
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s: %s\n",
                 absl::StatusCodeToString(status.code()).c_str(),
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace microgpt

int main(int argc, char** argv) { return microgpt::Main(argc, argv); }
