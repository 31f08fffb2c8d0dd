#include "trainer/local_training.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/checkpoint_store.h"
#include "server/shutdown_signals.h"
#include "trainer/job_options.h"
#include "trainer/job_watcher.h"
#include "trainer/training_job.h"

namespace microgpt {
namespace {

// True for the progress of a step whose validation loss was just computed.
bool Evaluated(const v1::TrainingProgress& p) {
  return p.has_val_loss() && p.val_step() == p.step();
}

void PrintProgress(const v1::TrainingProgress& p) {
  std::printf("step %lld/%lld | loss %.4f", static_cast<long long>(p.step()),
              static_cast<long long>(p.total_steps()), p.loss());
  if (Evaluated(p)) std::printf(" | val %.4f", p.val_loss());
  std::printf(" | lr %.6f | %.0f tok/s | %.1f s\n", p.learning_rate(),
              p.tokens_per_second(), p.elapsed_seconds());
  std::fflush(stdout);
}

}  // namespace

absl::Status TrainLocally(const v1::StartTrainingRequest& request,
                          const LocalTrainingOptions& options) {
  absl::StatusOr<TrainingJobOptions> job_options =
      JobOptionsFromRequest(request, options.limits);
  if (!job_options.ok()) return job_options.status();
  job_options->threads = options.threads;
  job_options->group = options.group;
  // Under mpirun only rank 0 prints.
  const bool prints = options.group == nullptr || options.group->rank() == 0;

  CheckpointStore store(options.checkpoint_root, options.retention);
  TrainingJob job("local", *std::move(job_options), request, &store,
                  options.observer);
  // Big enough that no checkpoint event is dropped while printing lags.
  auto watcher = std::make_shared<JobWatcher>(nullptr, 1 << 16);
  job.Subscribe(watcher);

  absl::Status start_status;
  int64_t start_step = 0;
  std::thread runner;
  {
    bool cancelling = false;
    runner = std::thread([&] {
      job.Run([&](const absl::Status& status) {
        start_status = status;
        if (status.ok()) start_step = job.Snapshot().progress().step();
      });
    });
    int64_t print_every = 0, next_print = 0;
    bool finished = false;
    while (!finished) {
      std::optional<v1::TrainingEvent> event =
          watcher->PopWithTimeout(absl::Milliseconds(100));
      if (ShutdownSignalReceived() && !cancelling) {
        cancelling = true;
        if (prints)
          std::fprintf(stderr,
                       "\ncancelling after the current step, %s (Ctrl-C again "
                       "to quit at once)\n",
                       request.discard_on_cancel()
                           ? "publishing nothing more (--discard_on_cancel)"
                           : "which is published for --resume");
        job.Cancel();
      }
      if (!event) continue;
      if (event->has_progress()) {
        const v1::TrainingProgress& p = event->progress();
        if (print_every == 0) {  // the first event: the run has started
          print_every =
              options.print_every > 0
                  ? options.print_every
                  : std::max<int64_t>(1, (p.total_steps() - start_step) / 10);
          next_print = start_step + print_every;
        }
        if (prints && (p.step() >= next_print || p.step() == p.total_steps() ||
                       Evaluated(p))) {
          PrintProgress(p);
          while (next_print <= p.step()) next_print += print_every;
        }
      } else if (event->has_checkpoint_published() && prints) {
        const v1::CheckpointInfo& c = event->checkpoint_published();
        std::printf("published %s version %lld: %s (loss %.4f",
                    c.model().c_str(), static_cast<long long>(c.version()),
                    c.path().c_str(), c.loss());
        if (c.has_val_loss()) std::printf(", val %.4f", c.val_loss());
        std::printf(")\n");
        std::fflush(stdout);
      } else if (event->has_finished()) {
        finished = true;
      }
    }
    runner.join();
  }
  job.Unsubscribe(watcher.get());

  if (!start_status.ok()) return start_status;
  const v1::TrainingJob final_job = job.Snapshot();
  if (final_job.state() == v1::JOB_STATE_SUCCEEDED && prints) {
    std::printf("final version: %s\n",
                store.VersionPath(final_job.model(), final_job.latest_version())
                    .c_str());
    std::printf(
        "trained %lld steps in %.2f s\n",
        static_cast<long long>(final_job.progress().step() - start_step),
        final_job.progress().elapsed_seconds());
  }
  if (final_job.state() == v1::JOB_STATE_CANCELLED) {
    return absl::CancelledError(absl::StrFormat(
        "cancelled at step %d; the latest version is %d (0: none)",
        final_job.progress().step(), final_job.latest_version()));
  }
  return job.status();
}

}  // namespace microgpt
