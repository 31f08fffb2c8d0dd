// GeneratorMetrics: the generator's Prometheus metrics.
//
// Events come through hooks: the service's GeneratorServiceObserver (calls by
// status code, time to first token, inter-token latency) and the scheduler's
// on_step (batch size). Levels are read from the parts at scrape time
// (tokens generated, active streams, queue length, loaded versions), so the
// hot paths pay nothing for them. Series:
//
//   microgpt_generator_requests_total{method,code}     counter
//   microgpt_generator_tokens_generated_total          counter
//   microgpt_generator_active_streams                  gauge
//   microgpt_generator_queued_sequences                gauge
//   microgpt_generator_active_sequences                gauge
//   microgpt_generator_rejected_sequences_total        counter
//   microgpt_generator_scheduler_steps_total           counter
//   microgpt_generator_batch_size                      histogram (sequences)
//   microgpt_generator_time_to_first_token_seconds     histogram
//   microgpt_generator_inter_token_latency_seconds     histogram
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

#include "absl/strings/string_view.h"
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
  void OnCallFinished(absl::string_view method, grpc::StatusCode code) override;
  void OnFirstToken(absl::Duration latency) override;
  void OnInterToken(absl::Duration gap) override;

 private:
  class Collector;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Histogram* batch_size_;
  prometheus::Histogram* time_to_first_token_;
  prometheus::Histogram* inter_token_latency_;
  std::shared_ptr<Collector> collector_;
};

}  // namespace microgpt

#endif  // MICROGPT_GENERATOR_GENERATOR_METRICS_H_
