#include "generator/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/blas_threads.h"
#include "common/denormals.h"
#include "common/log.h"

namespace microgpt {

// ------------------------------------------------------------- Sequence ---

Sequence::Sequence(Scheduler* scheduler, SequenceSpec spec, size_t capacity,
                   std::function<void()> listener)
    : scheduler_(scheduler),
      servable_(std::move(spec.servable)),
      capacity_(capacity),
      listener_(std::move(listener)),
      cache_(servable_->model.config()),
      sampler_(spec.sampling, spec.seed),
      text_(servable_->format == DatasetFormat::kText),
      max_tokens_(spec.max_tokens),
      seed_(spec.seed),
      prompt_tokens_(static_cast<int>(spec.prompt.size())),
      stop_(std::move(spec.stop)),
      include_stop_(spec.include_stop),
      min_tokens_(spec.min_tokens),
      deadline_(spec.time_limit == absl::InfiniteDuration()
                    ? absl::InfiniteFuture()
                    : absl::Now() + spec.time_limit),
      scoring_(spec.score) {
  for (const std::vector<int>& stop : stop_) {
    longest_stop_ = std::max(longest_stop_, stop.size());
  }
  if (spec.regex != nullptr) {
    matcher_ = std::make_unique<RegexMatcher>(std::move(spec.regex),
                                              servable_->tokenizer.Texts());
  }
  // The penalties count the prompt's tokens, as sent.
  for (const int id : spec.prompt) sampler_.Observe(id);
  const int block_size = servable_->model.config().block_size;
  // One more than block_size: a sampled token joins before a refill.
  context_.reserve(block_size + 1);
  const std::vector<int>& prompt = spec.prompt;
  const int length = static_cast<int>(prompt.size());
  if (scoring_) {
    // Stream indexes: documents BOS 0, the text 1..length, the final BOS
    // length + 1; text the text 0..length - 1, the first unscored. A long
    // text goes through the window as generation would (AdvanceScoring).
    if (!text_) context_.push_back(servable_->tokenizer.bos());
    const int fits =
        std::min<int>(length, block_size - static_cast<int>(context_.size()));
    context_.insert(context_.end(), prompt.begin(), prompt.begin() + fits);
    score_rest_.assign(prompt.begin() + fits, prompt.end());
    scored_ = 1;
    score_end_ = text_ ? length : length + 2;
    if (context_.empty()) {
      // A text model's empty text: nothing to feed or score.
      TokenEvent end;
      end.finish = FinishReason::kScored;
      Push(std::move(end));
    }
  } else if (!text_) {
    context_.push_back(servable_->tokenizer.bos());
    context_.insert(context_.end(), prompt.begin(), prompt.end());
  } else if (!prompt.empty()) {
    const int kept = std::min<int>(prompt.size(), block_size);
    dropped_ = static_cast<int>(prompt.size()) - kept;
    context_.insert(context_.end(), prompt.end() - kept, prompt.end());
  } else {
    // Text is trained without BOS; nanoGPT's sample.py starts from a newline.
    absl::StatusOr<std::vector<int>> newline =
        servable_->tokenizer.Encode("\n");
    context_.push_back(newline.ok() ? newline->front()
                                    : servable_->tokenizer.bos());
  }
  if (spec.prompt_logprobs && !scoring_ && length > 0) {
    // Every prompt token fed after the first of the context.
    scored_ = dropped_ + 1;
    score_end_ = dropped_ + static_cast<int>(context_.size());
  }
}

bool Sequence::Pop(TokenEvent* event) {
  bool was_full;
  {
    absl::MutexLock lock(&mu_);
    if (buffer_.empty()) return false;
    was_full = buffer_.size() >= capacity_;
    *event = std::move(buffer_.front());
    buffer_.pop_front();
    if (event->finish != FinishReason::kNone) Become(State::kDone);
  }
  if (was_full) scheduler_->Wake();  // it was being skipped
  return true;
}

size_t Sequence::PopAll(std::vector<TokenEvent>* events) {
  size_t n;
  bool was_full;
  {
    absl::MutexLock lock(&mu_);
    n = buffer_.size();
    if (n == 0) return 0;
    was_full = n >= capacity_;
    for (TokenEvent& event : buffer_) events->push_back(std::move(event));
    buffer_.clear();
    if (events->back().finish != FinishReason::kNone) Become(State::kDone);
  }
  if (was_full) scheduler_->Wake();  // it was being skipped
  return n;
}

Sequence::State Sequence::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

void Sequence::Cancel() {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kDone || state_ == State::kCancelled) return;
    Become(State::kCancelled);
    buffer_.clear();
  }
  scheduler_->Wake();
}

bool Sequence::Runnable() const {
  absl::MutexLock lock(&mu_);
  return state_ == State::kRunning && buffer_.size() < capacity_;
}

bool Sequence::Push(TokenEvent event) {
  absl::MutexLock lock(&mu_);
  if (state_ != State::kRunning) return false;
  if (event.finish != FinishReason::kNone) Become(State::kEnded);
  buffer_.push_back(std::move(event));
  return true;
}

void Sequence::Become(State to) {
  CheckTransition("Sequence", kTransitions, state_, to);
  state_ = to;
}

bool Sequence::Advance(const float* logits, std::vector<TokenEvent>* events) {
  // While the context is being fed the logits are not needed.
  if (Pending() > 0) return false;
  if (scoring_) {
    AdvanceScoring(logits, events);
    return true;
  }
  const int vocab_size = servable_->model.config().vocab_size;
  const int bos = servable_->tokenizer.bos();
  // The step's mask: the regex's (BOS only once the text matches), and BOS
  // before min_tokens (unless the regex leaves nothing else).
  absl::Span<const uint8_t> mask;
  if (matcher_ != nullptr) {
    const int allowed = matcher_->AllowedNext(generated_text_, bos, &allowed_);
    if (allowed == 0) {
      TokenEvent end;
      end.position = dropped_ + static_cast<int>(context_.size());
      end.finish = FinishReason::kNoMatch;
      Release(std::move(end), events);
      return true;
    }
    if (generated_ < min_tokens_ && allowed > 1) allowed_[bos] = 0;
    mask = allowed_;
  } else if (generated_ < min_tokens_) {
    allowed_.assign(vocab_size, 1);
    allowed_[bos] = 0;
    mask = allowed_;
  }
  SampledToken sampled =
      sampler_.Sample(absl::MakeConstSpan(logits, vocab_size), mask);
  ++generated_;
  TokenEvent event;
  event.id = sampled.id;
  event.position = dropped_ + static_cast<int>(context_.size());
  event.logprob = sampled.logprob;
  event.top = std::move(sampled.top);
  if (sampled.id == bos) {
    event.finish = FinishReason::kBos;
  } else {
    sampler_.Observe(sampled.id);
    if (matcher_ != nullptr) {
      generated_text_.append(servable_->tokenizer.Decode(sampled.id));
    }
    if (!stop_.empty()) {
      recent_.push_back(sampled.id);
      if (recent_.size() > longest_stop_) recent_.pop_front();
    }
    if (max_tokens_ > 0 && generated_ >= max_tokens_) {
      event.finish = FinishReason::kMaxTokens;
    } else if (cache_.full() && !text_) {
      event.finish = FinishReason::kBlockSize;
    } else {
      context_.push_back(sampled.id);
      if (cache_.full()) Refill();
    }
  }
  Release(std::move(event), events);
  return true;
}

// Stop sequences: the generated ids end with one (at or after min_tokens)
// -> the end; else the held-back events are the longest suffix of the
// generated ids that is a proper prefix of a stop sequence, and the ones
// before it go out. A stop sequence's tokens are always held back when it
// completes (its tokens but the last were a prefix), so the end releases
// what came before it and, with include_stop, the stop tokens.
void Sequence::Release(TokenEvent event, std::vector<TokenEvent>* events) {
  const bool ended = event.finish != FinishReason::kNone;
  // BOS and a tokenless end are never part of a stop sequence.
  if (stop_.empty() || event.finish == FinishReason::kBos || event.id < 0) {
    for (TokenEvent& held : held_) events->push_back(std::move(held));
    held_.clear();
    if (ended) event.generated = generated_;
    events->push_back(std::move(event));
    return;
  }
  held_.push_back(std::move(event));
  auto ends_with = [&](const std::vector<int>& ids, size_t n) {
    // The last n generated ids equal ids[0, n).
    return n <= recent_.size() &&
           std::equal(ids.begin(), ids.begin() + n, recent_.end() - n);
  };
  int completed = -1;
  if (generated_ >= min_tokens_) {
    for (size_t i = 0; i < stop_.size() && completed < 0; ++i) {
      if (ends_with(stop_[i], stop_[i].size())) completed = static_cast<int>(i);
    }
  }
  size_t keep = 0;  // held-back events that stay held
  if (completed >= 0) {
    keep = stop_[completed].size();
  } else if (!ended) {
    for (const std::vector<int>& stop : stop_) {
      for (size_t n = std::min(stop.size() - 1, held_.size()); n > keep; --n) {
        if (ends_with(stop, n)) {
          keep = n;
          break;
        }
      }
    }
  }
  while (held_.size() > keep) {
    events->push_back(std::move(held_.front()));
    held_.pop_front();
  }
  if (completed < 0) {
    if (ended) events->back().generated = generated_;
    return;
  }
  TokenEvent end;
  if (include_stop_) {
    for (size_t i = 0; i + 1 < held_.size(); ++i) {
      events->push_back(std::move(held_[i]));
    }
    end = std::move(held_.back());
  } else {
    end.position = held_.front().position;
  }
  held_.clear();
  end.finish = FinishReason::kStopSequence;
  end.stop_index = completed;
  end.generated = generated_;
  events->push_back(std::move(end));
}

bool Sequence::EndIfPastDeadline(absl::Time now) {
  if (now < deadline_ || state() != State::kRunning) return false;
  TokenEvent end;
  end.position = dropped_ + static_cast<int>(context_.size());
  end.finish = FinishReason::kTimeLimit;
  end.generated = generated_;
  for (TokenEvent& held : held_) Push(std::move(held));
  held_.clear();
  Push(std::move(end));
  return true;
}

int Sequence::StreamToken(int index) const {
  size_t i = static_cast<size_t>(index - dropped_);
  if (i < context_.size()) return context_[i];
  i -= context_.size();
  if (i < score_rest_.size()) return score_rest_[i];
  return servable_->tokenizer.bos();  // a documents text's end
}

ScoredToken Sequence::Score(const float* logits, int index) const {
  const int id = StreamToken(index);
  const SampledToken token = LogprobsOf(
      absl::MakeConstSpan(logits, servable_->model.config().vocab_size), id,
      sampler_.params().top_logprobs);
  return {id, index, token.logprob, token.top};
}

bool Sequence::ScoresChunk(int n) const {
  // The tokens the chunk's rows predict: stream indexes first .. first + n - 1.
  const int first = dropped_ + cache_.length() + 1;
  return std::max(first, scored_) < std::min(first + n, score_end_);
}

void Sequence::ScoreRows(const float* rows, int start, int n,
                         std::vector<TokenEvent>* events) {
  const int vocab_size = servable_->model.config().vocab_size;
  const int context_end = dropped_ + static_cast<int>(context_.size());
  TokenEvent event;
  for (int j = 0; j < n; ++j) {
    const int k = dropped_ + start + j + 1;  // the token row j predicts
    if (k < scored_ || k >= score_end_ || k >= context_end) continue;
    event.scored.push_back(
        Score(rows + static_cast<size_t>(j) * vocab_size, k));
    scored_ = k + 1;
  }
  if (!event.scored.empty()) events->push_back(std::move(event));
}

// The last fed token's logits score the token after the context; then the
// text goes on through the window as a generated stream would: the next
// token joins, the context keeps its last block_size / 2 tokens (Refill),
// and as many of the text's next ones as fit are fed from there.
void Sequence::AdvanceScoring(const float* logits,
                              std::vector<TokenEvent>* events) {
  TokenEvent event;
  const int k = dropped_ + static_cast<int>(context_.size());
  if (k >= scored_ && k < score_end_) {
    event.scored.push_back(Score(logits, k));
    scored_ = k + 1;
  }
  if (score_rest_.empty()) {
    event.finish = FinishReason::kScored;
  } else {
    const int block_size = servable_->model.config().block_size;
    context_.push_back(score_rest_.front());
    score_rest_.pop_front();
    Refill();
    while (static_cast<int>(context_.size()) < block_size &&
           !score_rest_.empty()) {
      context_.push_back(score_rest_.front());
      score_rest_.pop_front();
    }
  }
  if (!event.scored.empty() || event.finish != FinishReason::kNone) {
    events->push_back(std::move(event));
  }
}

void Sequence::Refill() {
  const int keep = std::max(1, servable_->model.config().block_size / 2);
  const int drop = static_cast<int>(context_.size()) - keep;
  context_.erase(context_.begin(), context_.begin() + drop);
  dropped_ += drop;
  cache_.Clear();
}

// ------------------------------------------------------------ Scheduler ---

struct Scheduler::DecoderSet {
  std::shared_ptr<const ServableModel> servable;   // keeps the model alive
  std::vector<std::unique_ptr<Decoder>> decoders;  // per worker, lazily
};

struct Scheduler::Task {
  DecoderSet* set;
  std::vector<Sequence*> sequences;  // <= max_batch, all of set's version
};

struct Scheduler::Pool {
  struct Scratch {
    // The decoding sequences of a task, their tokens and caches.
    std::vector<Sequence*> decoding;
    std::vector<int> tokens;
    std::vector<KVCache*> caches;
    std::vector<float> logits;       // [sequences, V]
    std::vector<TokenEvent> events;  // what one sampled token releases
    std::vector<float> rows;         // [chunk, V]: a scored chunk's logits
    // The sequences that got an event this step; the loop calls their
    // listeners once the step is joined.
    std::vector<Sequence*> produced;
  };
  std::vector<std::vector<Task>> tasks;  // [worker], set by the loop
  std::vector<Scratch> scratch;          // [worker]

  absl::Mutex mu;
  int64_t generation ABSL_GUARDED_BY(mu) = 0;
  int pending ABSL_GUARDED_BY(mu) = 0;  // helpers still working
  bool stop ABSL_GUARDED_BY(mu) = false;
};

Scheduler::Scheduler(SchedulerOptions options)
    : options_([&] {
        options.max_batch = std::max(1, options.max_batch);
        options.max_queued = std::max(0, options.max_queued);
        options.num_threads = std::max(1, options.num_threads);
        options.buffer_tokens = std::max(1, options.buffer_tokens);
        options.prefill_chunk = std::max(1, options.prefill_chunk);
        return options;
      }()),
      pool_(std::make_unique<Pool>()) {
  pool_->tasks.resize(options_.num_threads);
  pool_->scratch.resize(options_.num_threads);
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  loop_ = std::thread([this] { Loop(); });
  for (int worker = 1; worker < options_.num_threads; ++worker) {
    helpers_.emplace_back([this, worker] { HelperLoop(worker); });
  }
}

absl::StatusOr<std::vector<std::shared_ptr<Sequence>>> Scheduler::Submit(
    std::vector<SequenceSpec> specs, const std::function<void()>& listener) {
  for (const SequenceSpec& spec : specs) {
    if (spec.servable == nullptr) {
      return absl::InvalidArgumentError("sequence without a model");
    }
    const ModelConfig& config = spec.servable->model.config();
    if (spec.servable->format == DatasetFormat::kDocuments &&
        static_cast<int>(spec.prompt.size()) >= config.block_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt must be shorter than block_size ", config.block_size));
    }
    for (int id : spec.prompt) {
      if (id < 0 || id >= config.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt token ", id, " is outside the vocabulary"));
      }
    }
    if (spec.max_tokens < 0) {
      return absl::InvalidArgumentError("max_tokens must be >= 0");
    }
    if (absl::Status status =
            ValidateSamplingParams(spec.sampling, config.vocab_size);
        !status.ok()) {
      return status;
    }
  }
  std::vector<std::shared_ptr<Sequence>> sequences;
  sequences.reserve(specs.size());
  for (SequenceSpec& spec : specs) {
    sequences.push_back(std::shared_ptr<Sequence>(
        new Sequence(this, std::move(spec), options_.buffer_tokens, listener)));
  }
  absl::MutexLock lock(&mu_);
  if (stopping_)
    return absl::UnavailableError("the generator is shutting down");
  const size_t limit =
      static_cast<size_t>(options_.max_batch) + options_.max_queued;
  const size_t in_use = active_.size() + queue_.size();
  if (in_use + sequences.size() > limit) {
    rejected_ += static_cast<int64_t>(sequences.size());
    return absl::ResourceExhaustedError(
        absl::StrCat("the generator is at capacity: ", in_use,
                     " sequences running or queued, ", sequences.size(),
                     " more requested, limit ", limit,
                     " (max_batch + max_queued); retry "
                     "later"));
  }
  for (const auto& sequence : sequences) queue_.push_back(sequence);
  wake_ = true;
  return sequences;
}

void Scheduler::Wake() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

void Scheduler::ReapAndPromote() {
  auto gone = [](const std::shared_ptr<Sequence>& s) {
    return s->state() != Sequence::State::kRunning;
  };
  active_.erase(std::remove_if(active_.begin(), active_.end(), gone),
                active_.end());
  queue_.erase(std::remove_if(queue_.begin(), queue_.end(), gone),
               queue_.end());
  while (active_.size() < static_cast<size_t>(options_.max_batch) &&
         !queue_.empty()) {
    active_.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  // Decoders of versions without an active sequence are dropped (with the
  // reference that kept the version alive).
  for (auto it = decoder_sets_.begin(); it != decoder_sets_.end();) {
    const bool used = std::any_of(
        active_.begin(), active_.end(),
        [&](const auto& s) { return s->servable_.get() == it->first; });
    if (used) {
      ++it;
    } else {
      it = decoder_sets_.erase(it);
      --decoders_;
    }
  }
}

void Scheduler::SetBlasThreadsForStep(const ModelConfig& config, int workers) {
  if (config.n_embd == blas_n_embd_ && workers == blas_workers_) return;
  blas_n_embd_ = config.n_embd;
  blas_workers_ = workers;
  ConfigureBlasThreads(EngineWork::kDecoding, config, workers);
}

void Scheduler::Loop() {
  FlushDenormalsOnThisThread();
  std::vector<std::shared_ptr<Sequence>> runnable;
  std::vector<std::shared_ptr<Sequence>> expired;
  while (true) {
    runnable.clear();
    expired.clear();
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        if (stopping_) return;
        wake_ = false;
        // Time limits, queued sequences included; the earliest one left
        // bounds the wait below.
        const absl::Time now = absl::Now();
        absl::Time next_deadline = absl::InfiniteFuture();
        auto check_deadline = [&](const std::shared_ptr<Sequence>& sequence) {
          if (sequence->EndIfPastDeadline(now)) {
            expired.push_back(sequence);
          } else {
            next_deadline = std::min(next_deadline, sequence->deadline());
          }
        };
        std::for_each(active_.begin(), active_.end(), check_deadline);
        std::for_each(queue_.begin(), queue_.end(), check_deadline);
        ReapAndPromote();
        for (const auto& sequence : active_) {
          if (sequence->Runnable()) runnable.push_back(sequence);
        }
        if (!runnable.empty() || !expired.empty()) break;
        mu_.AwaitWithDeadline(
            absl::Condition(
                +[](Scheduler* s) { return s->wake_ || s->stopping_; }, this),
            next_deadline);
      }
    }
    for (const auto& sequence : expired) {
      if (sequence->listener_) sequence->listener_();
    }
    if (runnable.empty()) continue;
    RunStep(runnable);
    if (options_.on_step) options_.on_step(static_cast<int>(runnable.size()));
    for (Pool::Scratch& scratch : pool_->scratch) {
      for (Sequence* sequence : scratch.produced) {
        if (sequence->listener_) sequence->listener_();
      }
      scratch.produced.clear();
    }
  }
}

void Scheduler::RunStep(
    const std::vector<std::shared_ptr<Sequence>>& runnable) {
  std::map<const ServableModel*, std::vector<Sequence*>> groups;
  for (const auto& sequence : runnable) {
    groups[sequence->servable_.get()].push_back(sequence.get());
  }
  const int workers = options_.num_threads;
  for (auto& tasks : pool_->tasks) tasks.clear();
  for (auto& [servable, sequences] : groups) {
    std::unique_ptr<DecoderSet>& set = decoder_sets_[servable];
    if (set == nullptr) {
      set = std::make_unique<DecoderSet>();
      set->servable = sequences.front()->servable_;
      set->decoders.resize(workers);
      ++decoders_;
    }
    // Worker k takes the k-th slice of every version's batch (a wide model's;
    // a narrow one's batch stays on the loop's own worker).
    const size_t n = sequences.size();
    const size_t slices = std::min<size_t>(
        DecodingWorkersFor(servable->model.config(), workers), n);
    const size_t per_slice = (n + slices - 1) / slices;
    for (size_t k = 0, begin = 0; begin < n; ++k, begin += per_slice) {
      const size_t end = std::min(n, begin + per_slice);
      pool_->tasks[k].push_back(
          {set.get(), std::vector<Sequence*>(sequences.begin() + begin,
                                             sequences.begin() + end)});
    }
  }
  const bool parallel =
      workers > 1 &&
      std::any_of(pool_->tasks.begin() + 1, pool_->tasks.end(),
                  [](const auto& tasks) { return !tasks.empty(); });
  const ModelConfig* widest = nullptr;
  for (const auto& [servable, sequences] : groups) {
    const ModelConfig& config = servable->model.config();
    if (widest == nullptr || config.n_embd > widest->n_embd) widest = &config;
  }
  SetBlasThreadsForStep(*widest, parallel ? workers : 1);
  if (parallel) {
    absl::MutexLock lock(&pool_->mu);
    pool_->pending = workers - 1;
    ++pool_->generation;
  }
  for (const Task& task : pool_->tasks[0]) RunTask(0, task);
  if (parallel) {
    absl::MutexLock lock(&pool_->mu);
    pool_->mu.Await(absl::Condition(
        +[](Pool* pool) { return pool->pending == 0; }, pool_.get()));
  }
  ++steps_;
}

void Scheduler::HelperLoop(int worker) {
  FlushDenormalsOnThisThread();
  int64_t seen = 0;
  while (true) {
    {
      absl::MutexLock lock(&pool_->mu);
      auto ready = [&] { return pool_->stop || pool_->generation != seen; };
      pool_->mu.Await(absl::Condition(&ready));
      if (pool_->stop) return;
      seen = pool_->generation;
    }
    for (const Task& task : pool_->tasks[worker]) RunTask(worker, task);
    absl::MutexLock lock(&pool_->mu);
    --pool_->pending;
  }
}

void Scheduler::RunTask(int worker, const Task& task) {
  std::unique_ptr<Decoder>& decoder = task.set->decoders[worker];
  if (decoder == nullptr) {
    decoder = std::make_unique<Decoder>(
        task.set->servable->model,
        std::max(options_.max_batch, options_.prefill_chunk));
  }
  const int vocab_size = task.set->servable->model.config().vocab_size;
  Pool::Scratch& scratch = pool_->scratch[worker];
  scratch.decoding.clear();
  scratch.tokens.clear();
  scratch.caches.clear();
  scratch.logits.resize(task.sequences.size() * vocab_size);
  auto advance = [&](Sequence* sequence, const float* logits) {
    scratch.events.clear();
    const int sampled_before = sequence->generated_;
    if (!sequence->Advance(logits, &scratch.events)) return;
    // Sampled tokens only (not a scoring sequence's, nor a tokenless end).
    tokens_generated_ += sequence->generated_ - sampled_before;
    bool pushed = false;
    for (TokenEvent& event : scratch.events) {
      pushed = sequence->Push(std::move(event)) || pushed;
    }
    if (pushed) scratch.produced.push_back(sequence);
  };
  // A prefilling sequence feeds one chunk (and samples after its last); the
  // decoding ones are gathered for one StepBatch.
  for (Sequence* sequence : task.sequences) {
    const int pending = sequence->Pending();
    if (pending == 1) {
      scratch.decoding.push_back(sequence);
      scratch.tokens.push_back(sequence->context_.back());
      scratch.caches.push_back(&sequence->cache_);
      continue;
    }
    const int n = std::min(pending, options_.prefill_chunk);
    const int start = sequence->cache_.length();
    const auto chunk =
        absl::MakeConstSpan(sequence->context_.data() + start, n);
    if (!sequence->ScoresChunk(n)) {
      decoder->Prefill(chunk, &sequence->cache_, Decoder::PrefillLogits::kLast,
                       scratch.logits.data());
      advance(sequence, scratch.logits.data());
      continue;
    }
    // Rows that score context tokens: every row's logits.
    scratch.rows.resize(static_cast<size_t>(n) * vocab_size);
    decoder->Prefill(chunk, &sequence->cache_, Decoder::PrefillLogits::kAll,
                     scratch.rows.data());
    scratch.events.clear();
    sequence->ScoreRows(scratch.rows.data(), start, n, &scratch.events);
    for (TokenEvent& event : scratch.events) {
      if (sequence->Push(std::move(event)))
        scratch.produced.push_back(sequence);
    }
    advance(sequence,
            scratch.rows.data() + static_cast<size_t>(n - 1) * vocab_size);
  }
  // Decoding sequences: one token each, together.
  decoder->StepBatch(scratch.tokens, scratch.caches, scratch.logits.data());
  for (size_t i = 0; i < scratch.decoding.size(); ++i) {
    advance(scratch.decoding[i], scratch.logits.data() + i * vocab_size);
  }
}

void Scheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (loop_.joinable()) loop_.join();
  {
    absl::MutexLock lock(&pool_->mu);
    pool_->stop = true;
  }
  for (std::thread& helper : helpers_) helper.join();
  helpers_.clear();
  std::vector<std::shared_ptr<Sequence>> left;
  {
    absl::MutexLock lock(&mu_);
    left.assign(active_.begin(), active_.end());
    left.insert(left.end(), queue_.begin(), queue_.end());
    active_.clear();
    queue_.clear();
  }
  int cancelled = 0;
  for (const auto& sequence : left) {
    TokenEvent event;  // dropped unless the sequence is still kRunning
    event.position = sequence->dropped_ + sequence->cache_.length();
    event.finish = FinishReason::kCancelled;
    event.generated = sequence->generated_;
    if (!sequence->Push(std::move(event))) continue;  // it had ended
    ++cancelled;
    if (sequence->listener_) sequence->listener_();
  }
  decoder_sets_.clear();
  decoders_ = 0;
  if (cancelled > 0) {
    LogInfo(absl::StrCat("scheduler stopped; ", cancelled,
                         " sequences ended as cancelled"));
  }
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats stats;
  stats.tokens_generated = tokens_generated_.load();
  stats.steps = steps_.load();
  stats.decoders = decoders_.load();
  absl::MutexLock lock(&mu_);
  stats.rejected = rejected_;
  stats.active = static_cast<int>(active_.size());
  stats.queued = static_cast<int>(queue_.size());
  return stats;
}

}  // namespace microgpt
