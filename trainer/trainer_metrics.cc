#include "trainer/trainer_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <limits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"
#include "server/metrics_endpoint.h"
#include "trainer/job_state.h"

namespace microgpt {
namespace {

constexpr v1::JobState kStates[] = {
    v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED,
    v1::JOB_STATE_CANCELLED};

}  // namespace

struct TrainerMetrics::Impl {
  Impl()
      : registry(std::make_shared<prometheus::Registry>()),
        step(Gauge("microgpt_trainer_step", "Steps done by the latest job.")),
        total_steps(Gauge("microgpt_trainer_total_steps",
                          "Steps the latest job runs to.")),
        loss(Gauge("microgpt_trainer_loss",
                   "Mean cross-entropy of the latest step's batch.")),
        val_loss(Gauge("microgpt_trainer_val_loss",
                       "Validation loss of the latest evaluation (NaN "
                       "before one, and without held-out data).")),
        val_step(Gauge("microgpt_trainer_val_step",
                       "Step of the latest validation loss.")),
        learning_rate(Gauge("microgpt_trainer_learning_rate",
                            "Learning rate of the latest step.")),
        tokens_per_second(Gauge("microgpt_trainer_tokens_per_second",
                                "Target tokens per second since the latest "
                                "job began.")),
        tokens(prometheus::BuildCounter()
                   .Name("microgpt_trainer_tokens_total")
                   .Help("Target tokens trained, by model (rates come from "
                         "rate()).")
                   .Register(*registry)),
        published(prometheus::BuildCounter()
                      .Name("microgpt_trainer_checkpoints_published_total")
                      .Help("Versions published, by model.")
                      .Register(*registry)),
        state(prometheus::BuildGauge()
                  .Name("microgpt_trainer_job_state")
                  .Help("1 for the state of the latest job, 0 for the others.")
                  .Register(*registry)),
        jobs(prometheus::BuildCounter()
                 .Name("microgpt_trainer_jobs_total")
                 .Help("Jobs that ended, by final state.")
                 .Register(*registry)) {
    val_loss.Set(std::numeric_limits<double>::quiet_NaN());
    for (v1::JobState s : kStates) {
      state.Add({{"state", JobStateName(s)}}).Set(0);
      if (s != v1::JOB_STATE_RUNNING) jobs.Add({{"state", JobStateName(s)}});
    }
  }

  prometheus::Gauge& Gauge(const std::string& name, const std::string& help) {
    return prometheus::BuildGauge()
        .Name(name)
        .Help(help)
        .Register(*registry)
        .Add({});
  }

  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Gauge& step;
  prometheus::Gauge& total_steps;
  prometheus::Gauge& loss;
  prometheus::Gauge& val_loss;
  prometheus::Gauge& val_step;
  prometheus::Gauge& learning_rate;
  prometheus::Gauge& tokens_per_second;
  prometheus::Family<prometheus::Counter>& tokens;
  // The running job's tokens already counted (its progress is cumulative).
  std::atomic<int64_t> tokens_counted{0};
  prometheus::Family<prometheus::Counter>& published;
  prometheus::Family<prometheus::Gauge>& state;
  prometheus::Family<prometheus::Counter>& jobs;
  absl::Mutex state_mu;  // OnState's updates of `state`, one at a time
  std::unique_ptr<MetricsEndpoint> endpoint;
};

absl::StatusOr<std::unique_ptr<TrainerMetrics>> TrainerMetrics::Start(
    const std::string& address) {
  auto impl = std::make_unique<Impl>();
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start(address, impl->registry, "trainer");
  if (!endpoint.ok()) return endpoint.status();
  impl->endpoint = *std::move(endpoint);
  LogInfo(absl::StrCat("metrics on http://", address, "/metrics (port ",
                       impl->endpoint->port(), ")"));
  return std::unique_ptr<TrainerMetrics>(new TrainerMetrics(std::move(impl)));
}

TrainerMetrics::TrainerMetrics(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

TrainerMetrics::~TrainerMetrics() = default;

int TrainerMetrics::port() const { return impl_->endpoint->port(); }

// prometheus-cpp's metrics are thread-safe on their own.
void TrainerMetrics::OnProgress(absl::string_view model,
                                const v1::TrainingProgress& progress) {
  impl_->step.Set(static_cast<double>(progress.step()));
  impl_->total_steps.Set(static_cast<double>(progress.total_steps()));
  impl_->loss.Set(progress.loss());
  if (progress.has_val_loss()) {
    impl_->val_loss.Set(progress.val_loss());
    impl_->val_step.Set(static_cast<double>(progress.val_step()));
  }
  impl_->learning_rate.Set(progress.learning_rate());
  impl_->tokens_per_second.Set(progress.tokens_per_second());
  const int64_t before = impl_->tokens_counted.exchange(progress.tokens());
  if (progress.tokens() > before) {
    impl_->tokens.Add({{"model", std::string(model)}})
        .Increment(static_cast<double>(progress.tokens() - before));
  }
}

void TrainerMetrics::OnPublished(absl::string_view model, int64_t version) {
  impl_->published.Add({{"model", std::string(model)}}).Increment();
}

void TrainerMetrics::OnState(absl::string_view model, v1::JobState state) {
  // One job at a time: the gauges are the latest job's, set in one lock so
  // that a scrape never sees two states at 1.
  absl::MutexLock lock(&impl_->state_mu);
  for (v1::JobState s : kStates) {
    impl_->state.Add({{"state", JobStateName(s)}}).Set(s == state ? 1 : 0);
  }
  // A new job has no validation loss yet, whatever the last one had, and
  // counts its tokens from 0.
  if (state == v1::JOB_STATE_RUNNING) {
    impl_->val_loss.Set(std::numeric_limits<double>::quiet_NaN());
    impl_->tokens_counted.store(0);
  }
  if (state != v1::JOB_STATE_RUNNING) {
    impl_->jobs.Add({{"state", JobStateName(state)}}).Increment();
  }
}

}  // namespace microgpt
