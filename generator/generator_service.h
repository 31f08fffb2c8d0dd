// GeneratorServiceImpl: the microgpt.v1.Generator gRPC service (callback API).
//
// Generate validates the request against the model version it resolves to,
// submits one Sequence per sample to the Scheduler and streams the tokens as
// the scheduler produces them: a ServerWriteReactor keeps one write in flight,
// takes the next buffered token in OnWriteDone, and finishes when every sample
// has ended (the call's states: server/stream_state.h; it starts in kStarting
// while the samples are submitted). Reactions never compute or block; the
// scheduler's threads do the model math and notify the reactor when tokens
// arrive. A cancelled call (the client went away or its deadline passed)
// cancels its sequences at once.
//
//   GeneratorServiceImpl service(&manager, &scheduler);
//   runner.AddService(&service);
#ifndef MICROGPT_GENERATOR_GENERATOR_SERVICE_H_
#define MICROGPT_GENERATOR_GENERATOR_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "generator/model_manager.h"
#include "generator/request_validation.h"
#include "generator/scheduler.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

class GenerateReactor;
class ScoreReactor;

struct GeneratorServiceOptions {
  // Largest max_tokens a request may ask for (>= 1), and what 0 means for a
  // text model, whose samples have no block_size end (--max_tokens_limit).
  int max_tokens_limit = kDefaultMaxTokensLimit;
};

// Metrics hooks. `model` is the name of the model a call was served from:
// empty for ListModels and for a Generate refused before a model was found
// (so a label never holds a name nobody published).
class GeneratorServiceObserver {
 public:
  // Where the token events of the calls served from one model go.
  class ModelSeries {
   public:
    virtual ~ModelSeries() = default;
    // A sample's first token was handed to gRPC, `latency` after the call
    // began.
    virtual void OnFirstToken(absl::Duration latency) = 0;
    // A sample's next token was handed to gRPC, `gap` after its previous one.
    virtual void OnInterToken(absl::Duration gap) = 0;
    // `count` tokens were handed to gRPC in one message.
    virtual void OnTokensSent(int count) = 0;
  };

  virtual ~GeneratorServiceObserver() = default;
  // The series of `model`, looked up once per call; they live as long as
  // the observer.
  virtual ModelSeries* ForModel(absl::string_view model) = 0;
  // A Generate or ListModels call finished with `code` (Generate: when its
  // status is sent, including calls refused before any token).
  virtual void OnCallFinished(absl::string_view method, absl::string_view model,
                              grpc::StatusCode code) = 0;
};

class GeneratorServiceImpl final : public v1::Generator::CallbackService {
 public:
  // Both must outlive the service and every call it serves.
  GeneratorServiceImpl(const ModelManager* models, Scheduler* scheduler,
                       GeneratorServiceOptions options = {});
  ~GeneratorServiceImpl() override;

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context,
      const v1::GenerateRequest* request) override;

  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const v1::ListModelsRequest* request,
      v1::ListModelsResponse* response) override;

  // One scoring sequence per text on the scheduler (batched with the
  // running streams); the call finishes when every text is scored.
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const v1::ScoreRequest* request,
                                  v1::ScoreResponse* response) override;

  // Drain, for shutdown. After StopAccepting, new Generate calls fail with
  // UNAVAILABLE. WaitForStreams is true once no Generate call is in flight
  // (false when `timeout` passed first). CancelStreams cancels every call in
  // flight, for clients that stopped reading.
  void StopAccepting() ABSL_LOCKS_EXCLUDED(streams_mu_);
  bool WaitForStreams(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(streams_mu_);
  void CancelStreams() ABSL_LOCKS_EXCLUDED(streams_mu_);
  int active_streams() const ABSL_LOCKS_EXCLUDED(streams_mu_);

  // Sets the metrics hooks (nullptr: none); call before serving. Not owned.
  void SetObserver(GeneratorServiceObserver* observer) { observer_ = observer; }

 private:
  friend class GenerateReactor;
  friend class ScoreReactor;
  // False when the service no longer accepts calls.
  bool Register(GenerateReactor* stream) ABSL_LOCKS_EXCLUDED(streams_mu_);
  void Unregister(GenerateReactor* stream) ABSL_LOCKS_EXCLUDED(streams_mu_);

  const ModelManager* const models_;
  Scheduler* const scheduler_;
  const GeneratorServiceOptions options_;
  GeneratorServiceObserver* observer_ = nullptr;

  mutable absl::Mutex streams_mu_;
  bool accepting_ ABSL_GUARDED_BY(streams_mu_) = true;
  std::set<GenerateReactor*> streams_ ABSL_GUARDED_BY(streams_mu_);
};

}  // namespace microgpt

#endif  // MICROGPT_GENERATOR_GENERATOR_SERVICE_H_
