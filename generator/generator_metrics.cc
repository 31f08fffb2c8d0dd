#include "generator/generator_metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace microgpt {
namespace {

// Latencies from 100 us to ~10 s, roughly x2.5 apart.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return *buckets;
}

}  // namespace

// Brings the scrape-time series up to date, then collects the registry plus
// the per-version series (built fresh, so unloaded versions disappear).
class GeneratorMetrics::Collector final : public prometheus::Collectable {
 public:
  Collector(std::shared_ptr<prometheus::Registry> registry,
            const ModelManager* models, const Scheduler* scheduler,
            const GeneratorServiceImpl* service)
      : registry_(std::move(registry)),
        models_(models),
        scheduler_(scheduler),
        service_(service),
        steps_(prometheus::BuildCounter()
                   .Name("microgpt_generator_scheduler_steps_total")
                   .Help("Batched decoding steps.")
                   .Register(*registry_)
                   .Add({})),
        rejected_(prometheus::BuildCounter()
                      .Name("microgpt_generator_rejected_sequences_total")
                      .Help("Sequences refused with RESOURCE_EXHAUSTED.")
                      .Register(*registry_)
                      .Add({})),
        active_streams_(prometheus::BuildGauge()
                            .Name("microgpt_generator_active_streams")
                            .Help("Generate calls in flight.")
                            .Register(*registry_)
                            .Add({})),
        queued_(prometheus::BuildGauge()
                    .Name("microgpt_generator_queued_sequences")
                    .Help("Sequences waiting for a batch slot.")
                    .Register(*registry_)
                    .Add({})),
        active_(prometheus::BuildGauge()
                    .Name("microgpt_generator_active_sequences")
                    .Help("Sequences in the running batch.")
                    .Register(*registry_)
                    .Add({})),
        loaded_versions_(prometheus::BuildGauge()
                             .Name("microgpt_generator_loaded_versions")
                             .Help("Model versions loaded and servable.")
                             .Register(*registry_)
                             .Add({})),
        loads_(prometheus::BuildCounter()
                   .Name("microgpt_generator_model_loads_total")
                   .Help("Model versions loaded (ok) or that failed to load.")
                   .Register(*registry_)),
        loads_ok_(loads_.Add({{"result", "ok"}})),
        loads_failed_(loads_.Add({{"result", "failed"}})) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    Refresh();
    std::vector<prometheus::MetricFamily> families = registry_->Collect();
    prometheus::MetricFamily versions;
    versions.name = "microgpt_generator_model_version_loaded";
    versions.help = "1 for each model version loaded.";
    versions.type = prometheus::MetricType::Gauge;
    for (const ModelManager::LoadedModel& model : models_->List()) {
      for (const auto& servable : model.versions) {
        prometheus::ClientMetric metric;
        metric.label = {{"model", model.name},
                        {"version", absl::StrCat(servable->version)}};
        metric.gauge.value = 1;
        versions.metric.push_back(std::move(metric));
      }
    }
    families.push_back(std::move(versions));
    return families;
  }

 private:
  // Counters only go up: add what the part counted since the last scrape.
  static void Advance(prometheus::Counter& counter, int64_t total,
                      int64_t* seen) {
    if (total > *seen) counter.Increment(static_cast<double>(total - *seen));
    *seen = std::max(*seen, total);
  }

  void Refresh() const ABSL_LOCKS_EXCLUDED(mu_) {
    const SchedulerStats stats = scheduler_->stats();
    absl::MutexLock lock(&mu_);
    Advance(steps_, stats.steps, &seen_steps_);
    Advance(rejected_, stats.rejected, &seen_rejected_);
    Advance(loads_ok_, models_->loads(), &seen_loads_);
    Advance(loads_failed_, models_->failed_loads(), &seen_failed_loads_);
    active_streams_.Set(service_->active_streams());
    queued_.Set(stats.queued);
    active_.Set(stats.active);
    loaded_versions_.Set(models_->num_loaded_versions());
  }

  const std::shared_ptr<prometheus::Registry> registry_;
  const ModelManager* const models_;
  const Scheduler* const scheduler_;
  const GeneratorServiceImpl* const service_;
  prometheus::Counter& steps_;
  prometheus::Counter& rejected_;
  prometheus::Gauge& active_streams_;
  prometheus::Gauge& queued_;
  prometheus::Gauge& active_;
  prometheus::Gauge& loaded_versions_;
  prometheus::Family<prometheus::Counter>& loads_;
  prometheus::Counter& loads_ok_;
  prometheus::Counter& loads_failed_;

  mutable absl::Mutex mu_;
  mutable int64_t seen_steps_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int64_t seen_rejected_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int64_t seen_loads_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int64_t seen_failed_loads_ ABSL_GUARDED_BY(mu_) = 0;
};

// One model's series, created at the first call it serves.
class GeneratorMetrics::PerModel final
    : public GeneratorServiceObserver::ModelSeries {
 public:
  PerModel(prometheus::Counter* tokens, prometheus::Histogram* first_token,
           prometheus::Histogram* inter_token)
      : tokens_(tokens), first_token_(first_token), inter_token_(inter_token) {}

  void OnFirstToken(absl::Duration latency) override {
    first_token_->Observe(absl::ToDoubleSeconds(latency));
  }
  void OnInterToken(absl::Duration gap) override {
    inter_token_->Observe(absl::ToDoubleSeconds(gap));
  }
  void OnTokensSent(int count) override { tokens_->Increment(count); }

 private:
  prometheus::Counter* const tokens_;
  prometheus::Histogram* const first_token_;
  prometheus::Histogram* const inter_token_;
};

GeneratorMetrics::GeneratorMetrics(const ModelManager* models,
                                   const Scheduler* scheduler,
                                   const GeneratorServiceImpl* service)
    : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("microgpt_generator_requests_total")
                   .Help("Finished calls by method and gRPC status code.")
                   .Register(*registry_);
  // Sequences per step: 1 to the largest max_batch in powers of two.
  batch_size_ = &prometheus::BuildHistogram()
                     .Name("microgpt_generator_batch_size")
                     .Help("Sequences advanced per scheduler step.")
                     .Register(*registry_)
                     .Add({}, prometheus::Histogram::BucketBoundaries{
                                  1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
  tokens_ = &prometheus::BuildCounter()
                 .Name("microgpt_generator_tokens_generated_total")
                 .Help("Generated tokens sent to clients, by model.")
                 .Register(*registry_);
  time_to_first_token_ =
      &prometheus::BuildHistogram()
           .Name("microgpt_generator_time_to_first_token_seconds")
           .Help(
               "From the start of a Generate call to the first token of "
               "each sample being sent, by model.")
           .Register(*registry_);
  inter_token_latency_ =
      &prometheus::BuildHistogram()
           .Name("microgpt_generator_inter_token_latency_seconds")
           .Help("Between consecutive tokens of a sample being sent, by model.")
           .Register(*registry_);
  collector_ =
      std::make_shared<Collector>(registry_, models, scheduler, service);
}

GeneratorMetrics::~GeneratorMetrics() = default;

std::shared_ptr<prometheus::Collectable> GeneratorMetrics::collectable() const {
  return collector_;
}

void GeneratorMetrics::OnStep(int batch_size) {
  batch_size_->Observe(batch_size);
}

GeneratorServiceObserver::ModelSeries* GeneratorMetrics::ForModel(
    absl::string_view model) {
  absl::MutexLock lock(&series_mu_);
  std::unique_ptr<PerModel>& series = series_[model];
  if (series == nullptr) {
    const std::map<std::string, std::string> labels = {
        {"model", std::string(model)}};
    series = std::make_unique<PerModel>(
        &tokens_->Add(labels),
        &time_to_first_token_->Add(labels, LatencyBuckets()),
        &inter_token_latency_->Add(labels, LatencyBuckets()));
  }
  return series.get();
}

void GeneratorMetrics::OnCallFinished(absl::string_view method,
                                      absl::string_view model,
                                      grpc::StatusCode code) {
  requests_
      ->Add({{"method", std::string(method)},
             {"model", std::string(model)},
             {"code",
              absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}})
      .Increment();
}

}  // namespace microgpt
