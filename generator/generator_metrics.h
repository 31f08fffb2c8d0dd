// GeneratorMetrics: the generator's Prometheus metrics.
//
// Events come through hooks: the service's GeneratorServiceObserver (calls by
// model and status code, tokens sent, time to first token, inter-token
// latency, each by model) and the scheduler's on_step (batch size). Levels
// are read from the parts at scrape time (active streams, queue length,
// loaded versions), so the hot paths pay nothing for them. The model label
// is the name of a model the generator served (empty for ListModels and for
// calls refused before a model was found), so its values are bounded by the
// models published. Series:
//
//   microgpt_generator_requests_total{method,model,code}  counter
//   microgpt_generator_tokens_generated_total{model}   counter (sent)
//   microgpt_generator_active_streams                  gauge
//   microgpt_generator_queued_sequences                gauge
//   microgpt_generator_active_sequences                gauge
//   microgpt_generator_rejected_sequences_total        counter
//   microgpt_generator_scheduler_steps_total           counter
//   microgpt_generator_batch_size                      histogram (sequences)
//   microgpt_generator_time_to_first_token_seconds{model}  histogram
//   microgpt_generator_inter_token_latency_seconds{model}  histogram
//   microgpt_generator_loaded_versions                 gauge (count)
//   microgpt_generator_model_version_loaded{model,version}  gauge, 1 each
//   microgpt_generator_model_loads_total{result}       counter (ok, failed)
//
//   GeneratorMetrics metrics(&models, &scheduler, &service);
//   service.SetObserver(&metrics);  // and options.on_step -> OnStep
//   MICROGPT_ASSIGN_OR_RETURN(auto endpoint,
//       MetricsEndpoint::Start(address, metrics.collectable(), "generator"));
#ifndef MICROGPT_GENERATOR_GENERATOR_METRICS_H_
#define MICROGPT_GENERATOR_GENERATOR_METRICS_H_

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "generator/generator_service.h"
#include "generator/model_manager.h"
#include "generator/scheduler.h"

namespace microgpt {

class GeneratorMetrics final : public GeneratorServiceObserver {
 public:
  // The parts are read at scrape time; they must outlive every scrape (stop
  // the MetricsEndpoint first).
  GeneratorMetrics(const ModelManager* models, const Scheduler* scheduler,
                   const GeneratorServiceImpl* service);
  ~GeneratorMetrics() override;

  // What a MetricsEndpoint serves.
  std::shared_ptr<prometheus::Collectable> collectable() const;

  // The scheduler's on_step hook.
  void OnStep(int batch_size);

  // GeneratorServiceObserver.
  ModelSeries* ForModel(absl::string_view model) override
      ABSL_LOCKS_EXCLUDED(series_mu_);
  void OnCallFinished(absl::string_view method, absl::string_view model,
                      grpc::StatusCode code) override;

 private:
  class Collector;
  class PerModel;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* tokens_;
  prometheus::Family<prometheus::Histogram>* time_to_first_token_;
  prometheus::Family<prometheus::Histogram>* inter_token_latency_;
  prometheus::Histogram* batch_size_;
  std::shared_ptr<Collector> collector_;
  absl::Mutex series_mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<PerModel>> series_
      ABSL_GUARDED_BY(series_mu_);
};

}  // namespace microgpt

#endif  // MICROGPT_GENERATOR_GENERATOR_METRICS_H_
