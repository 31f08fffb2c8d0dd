#include "trainer/trainer_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <iterator>
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

// The latest job's series, labelled {job_id, model} (not "job": Prometheus
// sets that label to the scrape job and would rename ours): added when it
// starts, removed when the next one starts, so that they always describe one
// job.
struct JobSeries {
  prometheus::Gauge* step = nullptr;
  prometheus::Gauge* total_steps = nullptr;
  prometheus::Gauge* loss = nullptr;
  prometheus::Gauge* val_loss = nullptr;
  prometheus::Gauge* val_step = nullptr;
  prometheus::Gauge* learning_rate = nullptr;
  prometheus::Gauge* tokens_per_second = nullptr;
  prometheus::Gauge* state[std::size(kStates)] = {};
  prometheus::Counter* tokens = nullptr;  // of the model, kept across jobs
  int64_t tokens_counted = 0;  // the job's tokens already in `tokens`
};

struct TrainerMetrics::Impl {
  Impl()
      : registry(std::make_shared<prometheus::Registry>()),
        step(Family("microgpt_trainer_step", "Steps done by the latest job.")),
        total_steps(Family("microgpt_trainer_total_steps",
                           "Steps the latest job runs to.")),
        loss(Family("microgpt_trainer_loss",
                    "Mean cross-entropy of the latest step's batch.")),
        val_loss(Family("microgpt_trainer_val_loss",
                        "Validation loss of the latest evaluation (NaN "
                        "before one, and without held-out data).")),
        val_step(Family("microgpt_trainer_val_step",
                        "Step of the latest validation loss.")),
        learning_rate(Family("microgpt_trainer_learning_rate",
                             "Learning rate of the latest step.")),
        tokens_per_second(Family("microgpt_trainer_tokens_per_second",
                                 "Target tokens per second since the latest "
                                 "job began.")),
        state(Family("microgpt_trainer_job_state",
                     "1 for the state of the latest job, 0 for the others.")),
        tokens(prometheus::BuildCounter()
                   .Name("microgpt_trainer_tokens_total")
                   .Help("Target tokens trained, by model (rates come from "
                         "rate()).")
                   .Register(*registry)),
        published(prometheus::BuildCounter()
                      .Name("microgpt_trainer_checkpoints_published_total")
                      .Help("Versions published, by model.")
                      .Register(*registry)),
        jobs(prometheus::BuildCounter()
                 .Name("microgpt_trainer_jobs_total")
                 .Help("Jobs that ended, by final state.")
                 .Register(*registry)) {
    for (v1::JobState s : kStates) {
      if (s != v1::JOB_STATE_RUNNING) jobs.Add({{"state", JobStateName(s)}});
    }
  }

  prometheus::Family<prometheus::Gauge>& Family(const std::string& name,
                                                const std::string& help) {
    return prometheus::BuildGauge().Name(name).Help(help).Register(*registry);
  }

  // Replaces the previous job's series with `job`'s.
  void StartJob(absl::string_view model, absl::string_view job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (current.step != nullptr) {
      for (auto [family, gauge] :
           {std::pair{&step, current.step},
            {&total_steps, current.total_steps},
            {&loss, current.loss},
            {&val_loss, current.val_loss},
            {&val_step, current.val_step},
            {&learning_rate, current.learning_rate},
            {&tokens_per_second, current.tokens_per_second}}) {
        family->Remove(gauge);
      }
      for (prometheus::Gauge* gauge : current.state) state.Remove(gauge);
    }
    const prometheus::Labels labels = {{"model", std::string(model)},
                                       {"job_id", std::string(job)}};
    current.step = &step.Add(labels);
    current.total_steps = &total_steps.Add(labels);
    current.loss = &loss.Add(labels);
    current.val_loss = &val_loss.Add(labels);
    current.val_loss->Set(std::numeric_limits<double>::quiet_NaN());
    current.val_step = &val_step.Add(labels);
    current.learning_rate = &learning_rate.Add(labels);
    current.tokens_per_second = &tokens_per_second.Add(labels);
    for (size_t i = 0; i < std::size(kStates); ++i) {
      prometheus::Labels with_state = labels;
      with_state["state"] = JobStateName(kStates[i]);
      current.state[i] = &state.Add(with_state);
    }
    current.tokens = &tokens.Add({{"model", std::string(model)}});
    current.tokens_counted = 0;
  }

  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Gauge>& step;
  prometheus::Family<prometheus::Gauge>& total_steps;
  prometheus::Family<prometheus::Gauge>& loss;
  prometheus::Family<prometheus::Gauge>& val_loss;
  prometheus::Family<prometheus::Gauge>& val_step;
  prometheus::Family<prometheus::Gauge>& learning_rate;
  prometheus::Family<prometheus::Gauge>& tokens_per_second;
  prometheus::Family<prometheus::Gauge>& state;
  prometheus::Family<prometheus::Counter>& tokens;
  prometheus::Family<prometheus::Counter>& published;
  prometheus::Family<prometheus::Counter>& jobs;
  // Serialises the switch to a new job's series with their updates, so that
  // a scrape never sees two states at 1.
  absl::Mutex mu;
  JobSeries current ABSL_GUARDED_BY(mu);
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

void TrainerMetrics::OnProgress(absl::string_view model,
                                absl::string_view job_id,
                                const v1::TrainingProgress& progress) {
  absl::MutexLock lock(&impl_->mu);
  JobSeries& job = impl_->current;
  if (job.step == nullptr) return;  // no OnState(RUNNING) came first
  job.step->Set(static_cast<double>(progress.step()));
  job.total_steps->Set(static_cast<double>(progress.total_steps()));
  job.loss->Set(progress.loss());
  if (progress.has_val_loss()) {
    job.val_loss->Set(progress.val_loss());
    job.val_step->Set(static_cast<double>(progress.val_step()));
  }
  job.learning_rate->Set(progress.learning_rate());
  job.tokens_per_second->Set(progress.tokens_per_second());
  if (progress.tokens() > job.tokens_counted) {
    job.tokens->Increment(
        static_cast<double>(progress.tokens() - job.tokens_counted));
    job.tokens_counted = progress.tokens();
  }
}

void TrainerMetrics::OnPublished(absl::string_view model, int64_t version) {
  impl_->published.Add({{"model", std::string(model)}}).Increment();
}

void TrainerMetrics::OnState(absl::string_view model, absl::string_view job_id,
                             v1::JobState state) {
  absl::MutexLock lock(&impl_->mu);
  if (state == v1::JOB_STATE_RUNNING) impl_->StartJob(model, job_id);
  JobSeries& job = impl_->current;
  if (job.step == nullptr) return;
  for (size_t i = 0; i < std::size(kStates); ++i) {
    job.state[i]->Set(kStates[i] == state ? 1 : 0);
  }
  if (state != v1::JOB_STATE_RUNNING) {
    impl_->jobs.Add({{"state", JobStateName(state)}}).Increment();
  }
}

}  // namespace microgpt
