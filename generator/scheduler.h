// Scheduler: continuous batching of generation sequences on threads of its
// own (never on gRPC's threads).
//
// Each sample of a request is a Sequence: a KV cache, a seeded Sampler, its
// context (the tokens the next one is drawn from) and a bounded buffer of
// generated tokens for its consumer. One loop advances every runnable
// sequence once per step: sequences are grouped by servable (a model version,
// by shared_ptr identity), and each group is split across `num_threads`
// workers (each worker keeps one Decoder per model version, created on first
// use and dropped when that version has no sequence left). In a worker's
// share, the sequences that are decoding (one token to feed) advance by one
// token together through Decoder::StepBatch; a sequence with more context to
// feed (its prompt at the start, or a refill, below) is prefilling and
// advances by one chunk of up to `prefill_chunk` tokens through
// Decoder::Prefill, and samples in the step that feeds its last chunk. So a
// long prompt costs a few steps (a 255-character one four at the default 64)
// and never makes the other sequences wait more than a chunk's forward.
// Sequences join at the next step and leave as soon as they finish or are
// cancelled; one whose buffer is full (a slow reader) is skipped for the step,
// so it never stalls the others. The loop also sets OpenBLAS's process-wide
// thread count for the widest model it runs (common/blas_threads.h: one
// thread unless a single worker runs a wide model), between steps.
//
// Generation (docs/model.md) depends on the model's DatasetFormat:
// - documents: the context starts as BOS at position 0, then the prompt
//   (< block_size tokens); each sampled token is reported with the position it
//   takes in the sequence. A sample ends when the model draws BOS (reported,
//   kBos), when max_tokens tokens were generated (kMaxTokens) or when the
//   cache is full, so the last token cannot be fed (kBlockSize); that is at
//   most block_size - len(prompt) tokens, the last at position block_size.
//   When both kMaxTokens and kBlockSize apply, kMaxTokens is reported.
// - text: no BOS is fed. The context starts as the prompt's last block_size
//   tokens, or a newline for an empty prompt (BOS when the vocabulary has
//   none). A sampled token that does not fit in the full cache starts a
//   refill: the context becomes its last max(1, block_size / 2) tokens (the
//   new one included), fed again from position 0, so every token is drawn
//   from the logits of exactly its context window. Positions count the whole
//   stream: prompt (or the newline start) from 0, then every generated token,
//   past block_size. A sample ends at BOS (kBos) or after max_tokens tokens
//   (kMaxTokens), never with kBlockSize; max_tokens 0 means no bound here
//   (the service always sets one).
//
//   Scheduler scheduler(options);
//   scheduler.Start();
//   auto sequences =
//       scheduler.Submit(std::move(specs), [&] { wake_reader(); });
//   // reader: while ((*sequences)[0]->Pop(&event)) ... until done().
#ifndef MICROGPT_GENERATOR_SCHEDULER_H_
#define MICROGPT_GENERATOR_SCHEDULER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/check.h"
#include "common/decoder.h"
#include "common/regex_constraint.h"
#include "common/sampler.h"
#include "generator/model_manager.h"

namespace microgpt {

enum class FinishReason {
  kNone,          // not the last token of its sample
  kBos,           // the model drew BOS (reported as the last token)
  kMaxTokens,     // max_tokens tokens were generated
  kBlockSize,     // the sequence filled the model's block_size
  kCancelled,     // the scheduler stopped (shutdown); the event has no token
  kStopSequence,  // the text ended with a stop sequence (its last token, or
                  // no token without include_stop)
  kTimeLimit,     // the spec's time limit passed; the event has no token
  kNoMatch,       // no character continues the text toward a match of the
                  // spec's regex; the event has no token
  kScored,        // a scoring sequence scored its last token; no token
};

// A token of the context with the logprob the model gave it there.
struct ScoredToken {
  int id = 0;
  int position = 0;
  float logprob = 0;
  std::vector<TokenLogprob> top;
};

// One generated token of one sequence, or a tokenless end.
struct TokenEvent {
  int id = -1;                    // -1 on an event without a token
  int position = 0;               // in the stream (see the top of the file)
  float logprob = 0;              // log_softmax of the raw logits
  std::vector<TokenLogprob> top;  // most likely first
  FinishReason finish = FinishReason::kNone;
  // On the last event: the tokens sampled (BOS and a stop sequence's
  // included, sent or not), and with kStopSequence which of spec.stop.
  int generated = 0;
  int stop_index = -1;
  // Context tokens scored by this step's forward (the prompt's with
  // prompt_logprobs, a scoring sequence's text): on an event without a token
  // of its own (id -1, kNone, or kScored for the last).
  std::vector<ScoredToken> scored;
};

// What to generate. The prompt and parameters must be valid for the model
// (the service validates requests; Submit only checks what would crash).
struct SequenceSpec {
  std::shared_ptr<const ServableModel> servable;
  // Token ids without BOS: < block_size of them for a documents model, any
  // number for a text model (its last block_size are fed).
  std::vector<int> prompt;
  SamplingParams sampling;
  uint64_t seed = 0;
  int max_tokens = 0;  // 0 = until block_size (documents), unbounded (text)
  // Stop sequences as token ids (each non-empty): the sample ends when its
  // generated tokens end with one (kStopSequence), at or after the
  // min_tokens-th. Generated tokens that could still become one are held
  // back from the buffer until they cannot; with include_stop the stop
  // sequence's tokens are sent, the last one with the finish.
  std::vector<std::vector<int>> stop;
  bool include_stop = false;
  // BOS is masked (cannot be sampled) and stop sequences do not count
  // before this many generated tokens.
  int min_tokens = 0;
  // From submission; the sample then ends with kTimeLimit.
  absl::Duration time_limit = absl::InfiniteDuration();
  // The generated text must match it as a whole: each step masks the
  // characters that would make that impossible, and BOS until it matches
  // (common/regex_constraint.h). Null: no constraint.
  std::shared_ptr<const RegexConstraint> regex;
  // Report the logprob of each prompt token (see the top of the file).
  bool prompt_logprobs = false;
  // A scoring sequence: `prompt` is the text to score and nothing is
  // sampled; it ends with kScored once every token (a documents model's
  // final BOS too) is scored. sampling.top_logprobs applies.
  bool score = false;
};

class Scheduler;

// One sample in flight. The consumer (one thread at a time, or under its own
// lock) pops events; the scheduler owns the compute state.
class Sequence {
 public:
  // A sequence's life. Every change goes through Become (under mu_), which
  // aborts on one that kTransitions does not list. Only kRunning sequences
  // are stepped (when their buffer has room); the scheduler drops the others
  // before its next step. kDone and kCancelled are final: Cancel() there
  // does nothing.
  enum class State { kRunning, kEnded, kDone, kCancelled };
  static constexpr Transition<State> kTransitions[] = {
      // The scheduler buffers the terminal event (bos, max_tokens,
      // block_size; cancelled at Stop()).
      {State::kRunning, State::kEnded},
      // Cancel(): the consumer went away.
      {State::kRunning, State::kCancelled},
      // The consumer pops the terminal event.
      {State::kEnded, State::kDone},
      // Cancel() before that: the buffered events are dropped.
      {State::kEnded, State::kCancelled},
  };

  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  // The model version this sequence runs on, from submission to the end.
  const std::shared_ptr<const ServableModel>& servable() const {
    return servable_;
  }
  // The spec's seed and prompt length (tokens, as sent).
  uint64_t seed() const { return seed_; }
  int prompt_tokens() const { return prompt_tokens_; }

  // Moves the oldest buffered event into *event; false when none is buffered.
  bool Pop(TokenEvent* event) ABSL_LOCKS_EXCLUDED(mu_);
  // Appends every buffered event to *events, oldest first, under one lock;
  // the number appended (0 when none is buffered).
  size_t PopAll(std::vector<TokenEvent>* events) ABSL_LOCKS_EXCLUDED(mu_);
  State state() const ABSL_LOCKS_EXCLUDED(mu_);
  // True once the last event (the one with a finish reason) was popped.
  bool done() const { return state() == State::kDone; }
  // Stops the sequence: the scheduler drops it before its next step and no
  // further events are produced. Idempotent, thread-safe.
  void Cancel() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class Scheduler;
  Sequence(Scheduler* scheduler, SequenceSpec spec, size_t capacity,
           std::function<void()> listener);

  // Scheduler side. Runnable: kRunning and room in the buffer.
  bool Runnable() const ABSL_LOCKS_EXCLUDED(mu_);
  // Appends an event (a terminal one even over capacity); false unless
  // kRunning.
  bool Push(TokenEvent event) ABSL_LOCKS_EXCLUDED(mu_);
  // Context tokens not in the cache yet: 1 while decoding, more while
  // prefilling.
  int Pending() const {
    return static_cast<int>(context_.size()) - cache_.length();
  }
  // Consumes the logits of the token just fed; once the whole context is in
  // the cache, samples a token and appends to *events what can be sent now
  // (none while it may be the start of a stop sequence; the held-back ones
  // with it once it cannot). False while the context is being fed.
  bool Advance(const float* logits, std::vector<TokenEvent>* events);
  // The events a sampled one releases (see Advance), `event` last.
  void Release(TokenEvent event, std::vector<TokenEvent>* events);
  // True when the next n context tokens to feed predict a token to score
  // (their forward then needs every row's logits).
  bool ScoresChunk(int n) const;
  // Scores the tokens that the rows of a chunk of n tokens fed from cache
  // position `start` predict within the context; appends one event holding
  // them to *events (none when no row scores).
  void ScoreRows(const float* rows, int start, int n,
                 std::vector<TokenEvent>* events);
  // The token at a stream index at or after the context's start.
  int StreamToken(int index) const;
  ScoredToken Score(const float* logits, int index) const;
  // A scoring sequence's step once its context is fed (see Advance).
  void AdvanceScoring(const float* logits, std::vector<TokenEvent>* events);
  // Ends the sequence with kTimeLimit if its deadline is at or before `now`:
  // pushes the held-back events and the end; true if so.
  bool EndIfPastDeadline(absl::Time now);
  absl::Time deadline() const { return deadline_; }
  // Text models, when a sampled token does not fit in the full cache: keeps
  // the context's last max(1, block_size / 2) tokens and empties the cache.
  void Refill();
  void Become(State to) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Scheduler* const scheduler_;
  const std::shared_ptr<const ServableModel> servable_;
  const size_t capacity_;
  const std::function<void()> listener_;

  // Compute state: touched only by the scheduler's loop and, during a step,
  // by the one worker that steps this sequence.
  KVCache cache_;
  Sampler sampler_;
  const bool text_;  // a text model's sequence (DatasetFormat::kText)
  // The tokens the next one is drawn from, at most block_size: the first
  // cache_.length() fed, the others still to feed. Documents: BOS, prompt,
  // generated tokens. Text: the stream's last tokens.
  std::vector<int> context_;
  int dropped_ = 0;  // stream tokens before context_[0] (text models)
  int max_tokens_;
  int generated_ = 0;
  const uint64_t seed_;
  const int prompt_tokens_;
  const std::vector<std::vector<int>> stop_;
  const bool include_stop_;
  const int min_tokens_;
  const absl::Time deadline_;
  // Generated events held back while they may start a stop sequence, and
  // the last generated ids (as many as the longest stop sequence).
  std::deque<TokenEvent> held_;
  std::deque<int> recent_;
  size_t longest_stop_ = 0;
  // Scoring: the tokens at stream indexes [scored_, score_end_) are scored
  // by the logits of the token before them; a scoring sequence's tokens not
  // in the context yet wait in score_rest_.
  const bool scoring_;
  int scored_ = 0;
  int score_end_ = 0;
  std::deque<int> score_rest_;
  // With a regex: its matcher, the generated text, and the step's mask
  // (also min_tokens's, which masks BOS).
  std::unique_ptr<RegexMatcher> matcher_;
  std::string generated_text_;
  std::vector<uint8_t> allowed_;

  mutable absl::Mutex mu_;
  std::deque<TokenEvent> buffer_ ABSL_GUARDED_BY(mu_);
  State state_ ABSL_GUARDED_BY(mu_) = State::kRunning;
};

struct SchedulerOptions {
  int max_batch = 64;      // active sequences, stepped together
  int max_queued = 1024;   // sequences waiting beyond the active ones
  int num_threads = 1;     // compute workers (the loop is the first)
  int buffer_tokens = 64;  // per-sequence output buffer
  // Context tokens of one prefilling sequence fed per step (one
  // Decoder::Prefill call): bounds the step's time, so long prompts do not
  // hold up the decoding sequences.
  int prefill_chunk = 64;
  // Metrics hook: called on the loop thread after every step with the number
  // of sequences it advanced. Must be cheap and must not call the scheduler.
  std::function<void(int batch_size)> on_step;
};

struct SchedulerStats {
  int64_t tokens_generated = 0;  // sampled tokens, ever
  int64_t steps = 0;             // batched steps, ever
  int64_t rejected = 0;          // sequences refused with RESOURCE_EXHAUSTED
  int active = 0;                // sequences in the running batch
  int queued = 0;                // sequences waiting for a batch slot
  int decoders = 0;              // model versions with decoders allocated
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options);
  ~Scheduler();  // Stop()

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts the loop and the workers. Sequences submitted before wait.
  void Start();

  // Admits all the sequences of a request or none: RESOURCE_EXHAUSTED when
  // active + queued would exceed max_batch + max_queued, UNAVAILABLE after
  // Stop(), INVALID_ARGUMENT for a spec that cannot run. `listener` is called
  // on a scheduler thread, with no scheduler lock held, whenever one of these
  // sequences has new events; it must not block. The scheduler must outlive
  // every call on the returned sequences.
  absl::StatusOr<std::vector<std::shared_ptr<Sequence>>> Submit(
      std::vector<SequenceSpec> specs, const std::function<void()>& listener)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the loop and the workers and ends every unfinished sequence with a
  // kCancelled event (its listener is called). Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  SchedulerStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class Sequence;
  struct DecoderSet;  // one model version's decoders, one per worker
  struct Task;        // a slice of one version's batch, for one worker
  struct Pool;        // hands tasks to the helper workers

  void Wake() ABSL_LOCKS_EXCLUDED(mu_);
  void Loop();
  void HelperLoop(int worker);
  // Runs one step over `runnable`: fork, compute, join.
  void RunStep(const std::vector<std::shared_ptr<Sequence>>& runnable);
  void RunTask(int worker, const Task& task);
  // Removes finished and cancelled sequences, fills the batch from the queue.
  void ReapAndPromote() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets OpenBLAS's thread count for a step of `config` (the widest model
  // this step runs) on `workers` workers, when that changed. Loop thread,
  // between steps (no product in flight).
  void SetBlasThreadsForStep(const ModelConfig& config, int workers);

  const SchedulerOptions options_;

  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<Sequence>> active_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Sequence>> queue_ ABSL_GUARDED_BY(mu_);
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;

  std::atomic<int64_t> tokens_generated_{0};
  std::atomic<int64_t> steps_{0};
  std::atomic<int> decoders_{0};

  // Loop-owned: decoders by model version (the key is kept alive by the set).
  std::map<const ServableModel*, std::unique_ptr<DecoderSet>> decoder_sets_;
  // Loop-owned: the n_embd and worker count OpenBLAS's thread count was last
  // set for (0: not yet).
  int blas_n_embd_ = 0;
  int blas_workers_ = 0;
  std::unique_ptr<Pool> pool_;
  std::thread loop_;
  std::vector<std::thread> helpers_;
};

}  // namespace microgpt

#endif  // MICROGPT_GENERATOR_SCHEDULER_H_
