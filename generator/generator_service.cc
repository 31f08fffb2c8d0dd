#include "generator/generator_service.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/rng.h"
#include "common/status_macros.h"
#include "generator/request_validation.h"
#include "server/dataset_format_proto.h"
#include "server/grpc_status.h"
#include "server/stream_state.h"

namespace microgpt {
namespace {

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return v1::FINISH_REASON_UNSPECIFIED;
    case FinishReason::kBos:
      return v1::FINISH_REASON_BOS;
    case FinishReason::kMaxTokens:
      return v1::FINISH_REASON_MAX_TOKENS;
    case FinishReason::kBlockSize:
      return v1::FINISH_REASON_BLOCK_SIZE;
    case FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case FinishReason::kStopSequence:
      return v1::FINISH_REASON_STOP_SEQUENCE;
    case FinishReason::kTimeLimit:
      return v1::FINISH_REASON_TIME_LIMIT;
    case FinishReason::kNoMatch:
      return v1::FINISH_REASON_NO_MATCH;
    case FinishReason::kScored:  // Score's sequences, never streamed
      return v1::FINISH_REASON_UNSPECIFIED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

// A seed for requests without one. std::random_device is slow to open (13%
// of the server's CPU when built per call), so each thread seeds its own Rng
// from it once.
uint64_t RandomSeed() {
  thread_local Rng rng = [] {
    std::random_device device;
    return Rng((static_cast<uint64_t>(device()) << 32) ^ device());
  }();
  return rng.NextU64();
}

void AddLogprobs(
    const ServableModel& servable, const std::vector<TokenLogprob>& top,
    google::protobuf::RepeatedPtrField<v1::TokenLogprob>* alternatives) {
  for (const TokenLogprob& alternative : top) {
    v1::TokenLogprob* logprob = alternatives->Add();
    logprob->set_text(servable.tokenizer.Decode(alternative.id));
    logprob->set_id(alternative.id);
    logprob->set_logprob(alternative.logprob);
  }
}

// Scored context tokens (prompt_logprobs, Score) as GeneratedTokens.
void AddScored(const ServableModel& servable,
               const std::vector<ScoredToken>& scored,
               google::protobuf::RepeatedPtrField<v1::GeneratedToken>* out) {
  for (const ScoredToken& token : scored) {
    v1::GeneratedToken* proto = out->Add();
    proto->set_text(servable.tokenizer.Decode(token.id));
    proto->set_id(token.id);
    proto->set_position(token.position);
    proto->set_logprob(token.logprob);
    AddLogprobs(servable, token.top, proto->mutable_top_logprobs());
  }
}

// How the scheduler's listener reaches a reactor: the reactor's OnDone
// detaches it, so a late notification never touches a deleted reactor.
template <typename Reactor>
class ReactorNotifier {
 public:
  explicit ReactorNotifier(Reactor* reactor) : reactor_(reactor) {}
  void Notify() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (reactor_ != nullptr) reactor_->Pump();
  }
  void Detach() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  Reactor* reactor_ ABSL_GUARDED_BY(mu_);
};

// Cancels the sequences of a call that went away (called without the
// reactor's lock: Cancel wakes the scheduler).
void CancelUnfinished(const std::vector<std::shared_ptr<Sequence>>& sequences) {
  for (const auto& sequence : sequences) {
    if (!sequence->done()) sequence->Cancel();
  }
}

}  // namespace

// Streams the tokens of one Generate call. Created by the service method,
// deleted in OnDone. The scheduler reaches it through a Notifier, which
// OnDone detaches, so a late notification never touches a deleted reactor.
class GenerateReactor final
    : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  using State = StreamState::State;

  GenerateReactor(GeneratorServiceImpl* service,
                  grpc::CallbackServerContext* context,
                  const v1::GenerateRequest& request)
      : service_(service),
        context_(context),
        notifier_(std::make_shared<Notifier>(this)),
        pack_(request.pack_tokens()),
        stop_(request.stop().begin(), request.stop().end()),
        start_time_(absl::Now()) {
    absl::Status status =
        service_->Register(this)
            ? Begin(service_->models_, service_->scheduler_, request)
            : absl::UnavailableError("the generator is shutting down");
    if (!status.ok()) {
      {
        absl::MutexLock lock(&mu_);
        state_.Become(State::kFinished);
      }
      const grpc::Status grpc_status = ToGrpcStatus(status);
      ObserveFinish(grpc_status);
      Finish(grpc_status);
      return;
    }
    Pump();  // tokens may have arrived while Begin was running
  }

  void OnWriteDone(bool ok) override {
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      finish = state_.WriteDone(ok);
    }
    if (finish) {
      FinishCancelled();
    } else {
      Pump();
    }
  }

  void OnCancel() override {
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      finish = state_.Cancel();
    }
    if (finish) {
      FinishCancelled();
    } else {
      CancelSequences();
    }
  }

  void OnDone() override {
    notifier_->Detach();
    CancelSequences();
    service_->Unregister(this);
    delete this;
  }

  // Cancels the call from the server side (OnCancel follows).
  void TryCancel() { context_->TryCancel(); }

 private:
  using Notifier = ReactorNotifier<GenerateReactor>;
  friend Notifier;

  absl::Status Begin(const ModelManager* models, Scheduler* scheduler,
                     const v1::GenerateRequest& request) {
    if (absl::Status valid = ValidateGenerateRequest(request); !valid.ok()) {
      return valid;
    }
    absl::StatusOr<std::shared_ptr<const ServableModel>> servable =
        models->Get(request.model(), request.version());
    if (!servable.ok()) return servable.status();
    model_name_ = (*servable)->name;
    if (service_->observer_ != nullptr) {
      series_ = service_->observer_->ForModel(model_name_);
    }
    absl::StatusOr<std::vector<SequenceSpec>> specs = MakeSequenceSpecs(
        request, *servable, RandomSeed(), service_->options_.max_tokens_limit);
    if (!specs.ok()) return specs.status();
    absl::StatusOr<std::vector<std::shared_ptr<Sequence>>> sequences =
        scheduler->Submit(*std::move(specs),
                          [notifier = notifier_] { notifier->Notify(); });
    if (!sequences.ok()) return sequences.status();
    absl::MutexLock lock(&mu_);
    sequences_ = *std::move(sequences);
    state_.Become(State::kStreaming);
    return absl::OkStatus();
  }

  // In kStreaming, starts the next write, or finishes when every sample has
  // ended. StartWrite and Finish are called without mu_ held. The message
  // that ends the last sample goes out with the status in one batch (one
  // packet instead of two; that write has no OnWriteDone).
  void Pump() ABSL_LOCKS_EXCLUDED(mu_) {
    bool write = false;
    bool last = false;
    {
      absl::MutexLock lock(&mu_);
      if (state_.get() != State::kStreaming) return;
      if (NextResponse()) {
        write = true;  // response_ now belongs to the write
        last = AllDone();
        state_.Become(last ? State::kFinished : State::kWriting);
      } else if (AllDone()) {
        state_.Become(State::kFinished);
      } else {
        return;  // waiting for the scheduler
      }
    }
    if (write && !last) {
      StartWrite(&response_);
    } else if (write) {
      ObserveFinish(grpc::Status::OK);
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      ObserveFinish(grpc::Status::OK);
      Finish(grpc::Status::OK);
    }
  }

  // After the move to kFinished on a cancelled or broken call.
  void FinishCancelled() ABSL_LOCKS_EXCLUDED(mu_) {
    CancelSequences();
    ObserveFinish(grpc::Status::CANCELLED);
    Finish(grpc::Status::CANCELLED);
  }

  void ObserveFinish(const grpc::Status& status) {
    if (service_->observer_ != nullptr) {
      service_->observer_->OnCallFinished("Generate", model_name_,
                                          status.error_code());
    }
  }

  // Reports the sample's time to first token or its inter-token gap.
  void ObserveToken(size_t sample_index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (series_ == nullptr) return;
    const absl::Time now = absl::Now();
    if (last_token_time_.size() < sequences_.size()) {
      last_token_time_.resize(sequences_.size(), absl::InfinitePast());
    }
    absl::Time& last = last_token_time_[sample_index];
    if (last == absl::InfinitePast()) {
      series_->OnFirstToken(now - start_time_);
    } else {
      series_->OnInterToken(now - last);
    }
    last = now;
  }

  // Fills response_ with the next buffered token, or with pack_ every token
  // buffered for the next sample that has one, round-robin over samples.
  bool NextResponse() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const size_t n = sequences_.size();
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (next_ + k) % n;
      Sequence& sequence = *sequences_[i];
      events_.clear();
      if (pack_) {
        if (sequence.PopAll(&events_) == 0) continue;
      } else {
        events_.emplace_back();
        if (!sequence.Pop(&events_.back())) continue;
      }
      next_ = i + 1;
      int tokens = 0;
      for (const TokenEvent& event : events_) {
        if (event.id < 0) continue;
        ObserveToken(i);
        ++tokens;
      }
      if (series_ != nullptr && tokens > 0) series_->OnTokensSent(tokens);
      if (pack_) {
        FillPacked(static_cast<int>(i), sequence, events_);
      } else {
        Fill(static_cast<int>(i), sequence, events_.front());
      }
      return true;
    }
    return false;
  }

  bool AllDone() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::all_of(sequences_.begin(), sequences_.end(),
                       [](const auto& sequence) { return sequence->done(); });
  }

  void Fill(int sample_index, const Sequence& sequence, const TokenEvent& event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const ServableModel& servable = *sequence.servable();
    response_.Clear();
    response_.set_sample_index(sample_index);
    AddScored(servable, event.scored, response_.mutable_prompt_logprobs());
    response_.set_id(event.id);
    if (event.id >= 0) response_.set_text(servable.tokenizer.Decode(event.id));
    response_.set_position(event.position);
    response_.set_logprob(event.logprob);
    AddAlternatives(servable, event, response_.mutable_top_logprobs());
    SetFinish(sequence, event);
  }

  // A packed message (pack_tokens): the events' tokens in `tokens`, their
  // text concatenated in `text`, and the finish of the last event. A
  // kCancelled event has no token.
  void FillPacked(int sample_index, const Sequence& sequence,
                  const std::vector<TokenEvent>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const ServableModel& servable = *sequence.servable();
    response_.Clear();
    response_.set_sample_index(sample_index);
    response_.set_id(-1);
    std::string* text = response_.mutable_text();
    for (const TokenEvent& event : events) {
      AddScored(servable, event.scored, response_.mutable_prompt_logprobs());
      if (event.id < 0) continue;
      v1::GeneratedToken* token = response_.add_tokens();
      token->set_text(servable.tokenizer.Decode(event.id));
      text->append(token->text());
      token->set_id(event.id);
      token->set_position(event.position);
      token->set_logprob(event.logprob);
      AddAlternatives(servable, event, token->mutable_top_logprobs());
    }
    SetFinish(sequence, events.back());
  }

  static void AddAlternatives(
      const ServableModel& servable, const TokenEvent& event,
      google::protobuf::RepeatedPtrField<v1::TokenLogprob>* alternatives) {
    AddLogprobs(servable, event.top, alternatives);
  }

  // The finish reason and, on a sample's last message, what served it and
  // its usage.
  void SetFinish(const Sequence& sequence, const TokenEvent& last)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    response_.set_finish_reason(ToProto(last.finish));
    if (last.finish == FinishReason::kNone) return;
    response_.set_model(sequence.servable()->name);
    response_.set_version(sequence.servable()->version);
    response_.set_prompt_tokens(sequence.prompt_tokens());
    response_.set_generated_tokens(last.generated);
    response_.set_seed(sequence.seed());
    if (last.finish == FinishReason::kStopSequence && last.stop_index >= 0 &&
        last.stop_index < static_cast<int>(stop_.size())) {
      response_.set_stop_sequence(stop_[last.stop_index]);
    }
  }

  void CancelSequences() ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<std::shared_ptr<Sequence>> sequences;
    {
      absl::MutexLock lock(&mu_);
      sequences = sequences_;
    }
    CancelUnfinished(sequences);
  }

  GeneratorServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<Notifier> notifier_;
  const bool pack_;                      // the request's pack_tokens
  const std::vector<std::string> stop_;  // the request's stop strings
  absl::Mutex mu_;
  std::vector<std::shared_ptr<Sequence>> sequences_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;  // round-robin cursor
  StreamState state_ ABSL_GUARDED_BY(mu_){State::kStarting};
  const absl::Time start_time_;
  // The model serving the call (set by Begin, before any token), and its
  // metrics series (null without an observer).
  std::string model_name_;
  GeneratorServiceObserver::ModelSeries* series_ = nullptr;
  // When each sample's latest token was handed to gRPC (metrics only).
  std::vector<absl::Time> last_token_time_ ABSL_GUARDED_BY(mu_);
  // Owned by the write in flight in kWriting and kCancelling.
  v1::GenerateResponse response_;
  // The events NextResponse takes from one sample (kept for its capacity).
  std::vector<TokenEvent> events_ ABSL_GUARDED_BY(mu_);
};

// Scores the texts of one Score call: one scoring sequence per text, whose
// events (ScoredToken batches, then kScored) are collected into the response;
// the call finishes when every text is scored (UNAVAILABLE if the scheduler
// stopped first). Created by the service method, deleted in OnDone.
class ScoreReactor final : public grpc::ServerUnaryReactor {
 public:
  ScoreReactor(GeneratorServiceImpl* service, const v1::ScoreRequest& request,
               v1::ScoreResponse* response)
      : service_(service),
        response_(response),
        notifier_(std::make_shared<Notifier>(this)) {
    if (absl::Status status = Begin(request); !status.ok()) {
      {
        absl::MutexLock lock(&mu_);
        finished_ = true;
      }
      Done(ToGrpcStatus(status));
      return;
    }
    Pump();  // events may have arrived while Begin was running
  }

  // The client went away (or the deadline passed): the texts' sequences
  // stop, and the call ends CANCELLED unless it already finished.
  void OnCancel() override {
    CancelSequences();
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    Done(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    notifier_->Detach();
    CancelSequences();
    delete this;
  }

 private:
  using Notifier = ReactorNotifier<ScoreReactor>;
  friend Notifier;

  absl::Status Begin(const v1::ScoreRequest& request) {
    MICROGPT_RETURN_IF_ERROR(ValidateScoreRequest(request));
    MICROGPT_ASSIGN_OR_RETURN(
        std::shared_ptr<const ServableModel> servable,
        service_->models_->Get(request.model(), request.version()));
    model_name_ = servable->name;
    MICROGPT_ASSIGN_OR_RETURN(std::vector<SequenceSpec> specs,
                              MakeScoreSpecs(request, servable));
    response_->set_model(servable->name);
    response_->set_version(servable->version);
    for (size_t i = 0; i < specs.size(); ++i) response_->add_scores();
    MICROGPT_ASSIGN_OR_RETURN(
        std::vector<std::shared_ptr<Sequence>> sequences,
        service_->scheduler_->Submit(
            std::move(specs), [notifier = notifier_] { notifier->Notify(); }));
    absl::MutexLock lock(&mu_);
    sequences_ = std::move(sequences);
    ended_.assign(sequences_.size(), false);
    return absl::OkStatus();
  }

  // Moves every buffered event into the response; finishes the call once
  // every sequence has ended.
  void Pump() ABSL_LOCKS_EXCLUDED(mu_) {
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || sequences_.empty()) return;
      size_t ended = 0;
      for (size_t i = 0; i < sequences_.size(); ++i) {
        TokenEvent event;
        while (!ended_[i] && sequences_[i]->Pop(&event)) {
          AddScored(*sequences_[i]->servable(), event.scored,
                    response_->mutable_scores(i)->mutable_tokens());
          if (event.finish == FinishReason::kCancelled) cancelled_ = true;
          if (event.finish != FinishReason::kNone) ended_[i] = true;
        }
        ended += ended_[i];
      }
      if (ended < sequences_.size()) return;
      finished_ = true;
      for (v1::TextScore& score : *response_->mutable_scores()) {
        double sum = 0;
        for (const v1::GeneratedToken& token : score.tokens()) {
          sum += token.logprob();
        }
        const int n = score.tokens_size();
        score.set_sum_logprob(sum);
        score.set_mean_logprob(n > 0 ? sum / n : 0);
        score.set_perplexity(std::exp(-score.mean_logprob()));
      }
      status = cancelled_ ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                         "the generator is shutting down")
                          : grpc::Status::OK;
    }
    Done(status);
  }

  void Done(const grpc::Status& status) {
    if (service_->observer_ != nullptr) {
      service_->observer_->OnCallFinished("Score", model_name_,
                                          status.error_code());
    }
    Finish(status);
  }

  void CancelSequences() ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<std::shared_ptr<Sequence>> sequences;
    {
      absl::MutexLock lock(&mu_);
      sequences = sequences_;
    }
    CancelUnfinished(sequences);
  }

  GeneratorServiceImpl* const service_;
  v1::ScoreResponse* const response_;
  const std::shared_ptr<Notifier> notifier_;
  std::string model_name_;  // set by Begin once the model is found
  absl::Mutex mu_;
  std::vector<std::shared_ptr<Sequence>> sequences_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> ended_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

grpc::ServerUnaryReactor* GeneratorServiceImpl::Score(
    grpc::CallbackServerContext* context, const v1::ScoreRequest* request,
    v1::ScoreResponse* response) {
  return new ScoreReactor(this, *request, response);
}

GeneratorServiceImpl::GeneratorServiceImpl(const ModelManager* models,
                                           Scheduler* scheduler,
                                           GeneratorServiceOptions options)
    : models_(models), scheduler_(scheduler), options_(options) {}

GeneratorServiceImpl::~GeneratorServiceImpl() = default;

grpc::ServerWriteReactor<v1::GenerateResponse>* GeneratorServiceImpl::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return new GenerateReactor(this, context, *request);
}

bool GeneratorServiceImpl::Register(GenerateReactor* stream) {
  absl::MutexLock lock(&streams_mu_);
  if (!accepting_) return false;
  streams_.insert(stream);
  return true;
}

void GeneratorServiceImpl::Unregister(GenerateReactor* stream) {
  absl::MutexLock lock(&streams_mu_);
  streams_.erase(stream);
}

void GeneratorServiceImpl::StopAccepting() {
  absl::MutexLock lock(&streams_mu_);
  accepting_ = false;
}

bool GeneratorServiceImpl::WaitForStreams(absl::Duration timeout) {
  absl::MutexLock lock(&streams_mu_);
  return streams_mu_.AwaitWithTimeout(
      absl::Condition(
          +[](std::set<GenerateReactor*>* streams) { return streams->empty(); },
          &streams_),
      timeout);
}

void GeneratorServiceImpl::CancelStreams() {
  // Under the lock, so no stream can finish its OnDone (and free its
  // context) meanwhile; gRPC runs OnCancel and OnDone on its own threads,
  // never inside TryCancel.
  absl::MutexLock lock(&streams_mu_);
  for (GenerateReactor* stream : streams_) stream->TryCancel();
}

int GeneratorServiceImpl::active_streams() const {
  absl::MutexLock lock(&streams_mu_);
  return static_cast<int>(streams_.size());
}

namespace {

void SetConfig(const ModelConfig& config, v1::ModelConfig* proto) {
  proto->set_n_embd(config.n_embd);
  proto->set_n_head(config.n_head);
  proto->set_n_layer(config.n_layer);
  proto->set_block_size(config.block_size);
  proto->set_vocab_size(config.vocab_size);
}

}  // namespace

grpc::ServerUnaryReactor* GeneratorServiceImpl::ListModels(
    grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
    v1::ListModelsResponse* response) {
  for (const ModelManager::LoadedModel& model : models_->List()) {
    v1::ModelInfo* info = response->add_models();
    info->set_name(model.name);
    for (const auto& servable : model.versions) {
      v1::ModelVersion* version = info->add_versions();
      version->set_version(servable->version);
      version->set_step(servable->step);
      version->set_loss(servable->loss);
      if (servable->val_loss.has_value()) {
        version->set_val_loss(*servable->val_loss);
      }
      version->set_format(ToProto(servable->format));
      SetConfig(servable->model.config(), version->mutable_config());
    }
    const ServableModel& newest = *model.versions.front();
    SetConfig(newest.model.config(), info->mutable_config());
    for (int id = 0; id < newest.tokenizer.bos(); ++id) {
      info->add_vocab(newest.tokenizer.Decode(id));
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (observer_ != nullptr) {
    observer_->OnCallFinished("ListModels", "", grpc::OK);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace microgpt
