#include "generator/scheduler.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/blas_threads.h"
#include "common/denormals.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/generator/test_util.h"

namespace microgpt {
namespace {

using ::microgpt::testing::kLetters;
using ::microgpt::testing::MakeCheckpoint;
using ::microgpt::testing::ReferenceLogprobs;
using ::microgpt::testing::ReferenceSample;
using ::microgpt::testing::SmallConfig;
using ::microgpt::testing::SteerBos;
using ::microgpt::testing::WaitFor;
using ::testing::HasSubstr;

std::shared_ptr<const ServableModel> MakeServable(
    const ModelCheckpoint& checkpoint, int64_t version = 1,
    DatasetFormat format = DatasetFormat::kDocuments) {
  Model model =
      *Model::FromParameters(checkpoint.config, checkpoint.parameters);
  return std::make_shared<const ServableModel>(ServableModel{
      "m", version, checkpoint.step, checkpoint.loss, std::move(model),
      checkpoint.tokenizer, format, std::nullopt});
}

// Letters, space and newline: a text model's vocabulary.
constexpr absl::string_view kTextChars = "abcdefghijklmnopqrstuvwxyz \n";

// The logits of the last of `context` fed token by token into a fresh cache.
std::vector<float> LogitsOf(const Model& model,
                            const std::vector<int>& context) {
  Decoder decoder(model, 1);
  KVCache cache(model.config());
  std::vector<float> logits(model.config().vocab_size);
  for (int token : context) decoder.Step(token, &cache, logits.data());
  return logits;
}

// log_softmax(logits)[id], in double.
double LogProb(const std::vector<float>& logits, int id) {
  const double m = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float v : logits) sum += std::exp(double{v} - m);
  return double{logits[id]} - m - std::log(sum);
}

SequenceSpec Spec(std::shared_ptr<const ServableModel> servable, uint64_t seed,
                  std::vector<int> prompt = {}, int max_tokens = 0) {
  SequenceSpec spec;
  spec.servable = std::move(servable);
  spec.seed = seed;
  spec.prompt = std::move(prompt);
  spec.max_tokens = max_tokens;
  return spec;
}

// Pops every event of a sequence until its last one (or times out).
std::vector<TokenEvent> Drain(Sequence& sequence,
                              absl::Duration timeout = absl::Seconds(20)) {
  std::vector<TokenEvent> events;
  const absl::Time deadline = absl::Now() + timeout;
  while (!sequence.done() && absl::Now() < deadline) {
    TokenEvent event;
    if (sequence.Pop(&event)) {
      events.push_back(event);
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  return events;
}

std::vector<int> EventIds(const std::vector<TokenEvent>& events) {
  std::vector<int> ids;
  ids.reserve(events.size());
  for (const auto& e : events) ids.push_back(e.id);
  return ids;
}

TEST(SchedulerTest, TokensMatchDirectDecodingWithTheSameSeed) {
  auto servable = MakeServable(MakeCheckpoint(SmallConfig(), 11));
  Scheduler scheduler({});
  scheduler.Start();
  const std::vector<int> prompt = {4, 12};  // "em"
  std::vector<SequenceSpec> specs;
  specs.reserve(64);
  for (uint64_t seed = 100; seed < 108; ++seed) {
    specs.push_back(Spec(servable, seed, prompt));
  }
  auto sequences = scheduler.Submit(specs, nullptr);
  ASSERT_TRUE(sequences.ok()) << sequences.status();
  for (size_t i = 0; i < sequences->size(); ++i) {
    std::vector<TokenEvent> events = Drain(*(*sequences)[i]);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(EventIds(events),
              ReferenceSample(servable->model, servable->tokenizer.bos(),
                              prompt, SamplingParams(), 100 + i, 0))
        << "sample " << i;
    // Positions count from BOS at 0, then the prompt.
    for (size_t t = 0; t < events.size(); ++t) {
      EXPECT_EQ(events[t].position, static_cast<int>(3 + t));
    }
    EXPECT_NE(events.back().finish, FinishReason::kNone);
    EXPECT_NE(events.back().finish, FinishReason::kCancelled);
  }
}

// A prompt fed in chunks (3 here: BOS and 40 characters in 16 + 16 + 9)
// gives the tokens and log-probabilities of feeding it one token per step.
TEST(SchedulerTest, ChunkedPrefillGivesTheTokensOfTokenByTokenFeeding) {
  auto servable = MakeServable(MakeCheckpoint(SmallConfig(64), 12));
  SchedulerOptions options;
  options.prefill_chunk = 16;
  Scheduler scheduler(options);
  scheduler.Start();
  std::vector<int> prompt;
  for (int i = 0; i < 40; ++i) prompt.push_back((i * 7) % 26);
  SamplingParams params;
  params.temperature = 1.0f;
  std::vector<SequenceSpec> specs;
  for (uint64_t seed = 50; seed < 54; ++seed) {
    specs.push_back(Spec(servable, seed, prompt));
    specs.back().sampling = params;
  }
  auto sequences = scheduler.Submit(specs, nullptr);
  ASSERT_TRUE(sequences.ok()) << sequences.status();
  const int bos = servable->tokenizer.bos();
  for (size_t i = 0; i < sequences->size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "sample " << i);
    const std::vector<TokenEvent> events = Drain(*(*sequences)[i]);
    const std::vector<int> ids = EventIds(events);
    ASSERT_EQ(ids,
              ReferenceSample(servable->model, bos, prompt, params, 50 + i, 0));
    std::vector<int> fed = {bos};
    fed.insert(fed.end(), prompt.begin(), prompt.end());
    fed.insert(fed.end(), ids.begin(), ids.end() - 1);
    const std::vector<std::vector<float>> want =
        ReferenceLogprobs(servable->model, fed);
    for (size_t t = 0; t < events.size(); ++t) {
      EXPECT_EQ(events[t].position, static_cast<int>(41 + t));
      EXPECT_NEAR(events[t].logprob, want[40 + t][ids[t]], 1e-5) << t;
    }
  }
}

// While a 255-character prompt prefills (BOS and 255 tokens: four chunks of
// 64, the token drawn in the fourth step), a sequence that is already
// running gets a token in every step.
TEST(SchedulerTest, LongPromptPrefillsInAFewStepsWhileOthersDecode) {
  // The running one: a text model, which never ends at block_size (its
  // refills of 16 tokens fit in one chunk, sampled in the same step).
  ModelCheckpoint text = MakeCheckpoint(SmallConfig(32), 4, 1, 3.0, kTextChars);
  SteerBos(text, -10.0f);
  auto running = MakeServable(text, 1, DatasetFormat::kText);
  auto prompted = MakeServable(MakeCheckpoint(SmallConfig(512), 5), 2);
  SchedulerOptions options;
  options.buffer_tokens = 1 << 20;  // never full: it runs every step
  std::atomic<int> steps{0}, steps_of_two{0};
  options.on_step = [&](int batch_size) {
    ++steps;
    if (batch_size == 2) ++steps_of_two;
  };
  Scheduler scheduler(options);
  scheduler.Start();
  auto first = scheduler.Submit({Spec(running, 1)}, nullptr);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(WaitFor([&] { return scheduler.stats().tokens_generated > 3; }));
  std::vector<int> prompt;
  for (int i = 0; i < 255; ++i) prompt.push_back((i * 5) % 26);
  auto second =
      scheduler.Submit({Spec(prompted, 9, prompt, /*max_tokens=*/1)}, nullptr);
  ASSERT_TRUE(second.ok());
  const std::vector<TokenEvent> events = Drain(*(*second)[0]);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].position, 256);
  EXPECT_EQ(events[0].finish, FinishReason::kMaxTokens);
  EXPECT_EQ(EventIds(events),
            ReferenceSample(prompted->model, prompted->tokenizer.bos(), prompt,
                            SamplingParams(), 9, 1));
  (*first)[0]->Cancel();
  ASSERT_TRUE(WaitFor([&] { return scheduler.stats().active == 0; }));
  EXPECT_EQ(steps_of_two.load(), 4);
  // One token of the running sequence per step, and the prompted one's.
  EXPECT_EQ(scheduler.stats().tokens_generated, steps.load() + 1);
}

// A text model's stream runs past block_size (16 here): each token is drawn
// from exactly its context window, the stream's last tokens, which starts as
// the prompt's last 16 tokens and, when a token does not fit, becomes the
// last 8. Each reported log-probability is the one a fresh cache fed that
// window token by token gives, positions count the whole stream and the
// sample ends only at max_tokens. Refills go through one chunk and through
// several.
TEST(SchedulerTest, TextModelsGeneratePastBlockSizeFromTheirContextWindow) {
  constexpr int kBlock = 16, kTokens = 100;
  ModelCheckpoint checkpoint =
      MakeCheckpoint(SmallConfig(kBlock), 6, 1, 3.0, kTextChars);
  SteerBos(checkpoint, -10.0f);
  auto servable = MakeServable(checkpoint, 1, DatasetFormat::kText);
  const Model& model = servable->model;
  SamplingParams params;
  params.temperature = 1.0f;
  for (const int chunk : {64, 3}) {
    SchedulerOptions options;
    options.prefill_chunk = chunk;
    Scheduler scheduler(options);
    scheduler.Start();
    const std::vector<int> short_prompt = {7, 4, 11, 11, 14};  // "hello"
    std::vector<int> long_prompt;  // longer than the block
    for (int i = 0; i < 40; ++i) long_prompt.push_back((i * 3) % 27);
    for (const std::vector<int>& prompt : {short_prompt, long_prompt}) {
      SCOPED_TRACE(::testing::Message()
                   << "chunk " << chunk << ", prompt of " << prompt.size());
      SequenceSpec spec = Spec(servable, 31, prompt, kTokens);
      spec.sampling = params;
      auto sequences = scheduler.Submit({spec}, nullptr);
      ASSERT_TRUE(sequences.ok()) << sequences.status();
      const std::vector<TokenEvent> events = Drain(*(*sequences)[0]);
      ASSERT_EQ(events.size(), static_cast<size_t>(kTokens));
      std::vector<int> context(
          prompt.end() - std::min<int>(prompt.size(), kBlock), prompt.end());
      Sampler sampler(params, 31);
      for (int t = 0; t < kTokens; ++t) {
        const std::vector<float> logits = LogitsOf(model, context);
        ASSERT_EQ(events[t].id, sampler.Sample(logits).id) << t;
        EXPECT_NEAR(events[t].logprob, LogProb(logits, events[t].id), 1e-5)
            << t;
        EXPECT_EQ(events[t].position, static_cast<int>(prompt.size()) + t);
        EXPECT_EQ(events[t].finish, t + 1 == kTokens ? FinishReason::kMaxTokens
                                                     : FinishReason::kNone);
        context.push_back(events[t].id);
        if (context.size() > kBlock) {
          context.erase(context.begin(), context.end() - kBlock / 2);
        }
      }
    }
  }
}

// An empty prompt starts a text model's stream from a newline (at position
// 0), or from BOS when its vocabulary has no newline.
TEST(SchedulerTest, EmptyTextPromptStartsFromANewline) {
  Scheduler scheduler({});
  scheduler.Start();
  for (const absl::string_view chars : {kTextChars, kLetters}) {
    auto servable =
        MakeServable(MakeCheckpoint(SmallConfig(), 8, 1, 3.0, chars), 1,
                     DatasetFormat::kText);
    const absl::StatusOr<std::vector<int>> newline =
        servable->tokenizer.Encode("\n");
    const int start =
        newline.ok() ? newline->front() : servable->tokenizer.bos();
    SCOPED_TRACE(newline.ok() ? "newline" : "no newline");
    auto sequences =
        scheduler.Submit({Spec(servable, 2, {}, /*max_tokens=*/1)}, nullptr);
    ASSERT_TRUE(sequences.ok());
    const std::vector<TokenEvent> events = Drain(*(*sequences)[0]);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].position, 1);
    const std::vector<float> logits = LogitsOf(servable->model, {start});
    EXPECT_EQ(events[0].id, Sampler(SamplingParams(), 2).Sample(logits).id);
    EXPECT_NEAR(events[0].logprob, LogProb(logits, events[0].id), 1e-5);
    // The other start would have given other numbers.
    const int other = newline.ok() ? servable->tokenizer.bos() : 0;
    EXPECT_GT(
        std::abs(LogProb(LogitsOf(servable->model, {other}), events[0].id) -
                 events[0].logprob),
        1e-3);
  }
}

TEST(SchedulerTest, BosEndsTheSampleAndIsReported) {
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(), 3);
  SteerBos(checkpoint, 10.0f);
  auto servable = MakeServable(checkpoint);
  Scheduler scheduler({});
  scheduler.Start();
  auto sequences = scheduler.Submit({Spec(servable, 1, {0, 1, 2})}, nullptr);
  ASSERT_TRUE(sequences.ok());
  std::vector<TokenEvent> events = Drain(*(*sequences)[0]);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].id, servable->tokenizer.bos());
  EXPECT_EQ(events[0].position, 4);
  EXPECT_EQ(events[0].finish, FinishReason::kBos);
  EXPECT_GT(events[0].logprob, -1e-3);
}

TEST(SchedulerTest, MaxTokensAndBlockSizeEndSamples) {
  ModelCheckpoint checkpoint =
      MakeCheckpoint(SmallConfig(/*block_size=*/16), 3);
  SteerBos(checkpoint, -10.0f);
  auto servable = MakeServable(checkpoint);
  Scheduler scheduler({});
  scheduler.Start();
  auto sequences = scheduler.Submit(
      {Spec(servable, 1, {}, /*max_tokens=*/5), Spec(servable, 2, {0, 1, 2}),
       Spec(servable, 3, std::vector<int>(15, 7)),
       Spec(servable, 4, std::vector<int>(12, 7), /*max_tokens=*/4)},
      nullptr);
  ASSERT_TRUE(sequences.ok());

  std::vector<TokenEvent> limited = Drain(*(*sequences)[0]);
  ASSERT_EQ(limited.size(), 5u);
  EXPECT_EQ(limited.back().finish, FinishReason::kMaxTokens);
  EXPECT_EQ(limited.back().position, 5);
  for (size_t t = 0; t + 1 < limited.size(); ++t) {
    EXPECT_EQ(limited[t].finish, FinishReason::kNone);
  }

  // BOS + 3 prompt tokens fill positions 0..3; 13 tokens take 4..16; the one
  // at position 16 = block_size cannot be fed.
  std::vector<TokenEvent> full = Drain(*(*sequences)[1]);
  ASSERT_EQ(full.size(), 13u);
  EXPECT_EQ(full.back().finish, FinishReason::kBlockSize);
  EXPECT_EQ(full.back().position, 16);

  // The longest prompt still samples one token.
  std::vector<TokenEvent> one = Drain(*(*sequences)[2]);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].finish, FinishReason::kBlockSize);
  EXPECT_EQ(one[0].position, 16);

  // Both limits at once: max_tokens is reported.
  std::vector<TokenEvent> both = Drain(*(*sequences)[3]);
  ASSERT_EQ(both.size(), 4u);
  EXPECT_EQ(both.back().finish, FinishReason::kMaxTokens);
  EXPECT_EQ(scheduler.stats().tokens_generated, 5 + 13 + 1 + 4);
}

TEST(SchedulerTest, AdmissionIsBounded) {
  auto servable = MakeServable(MakeCheckpoint(SmallConfig(), 1));
  SchedulerOptions options;
  options.max_batch = 2;
  options.max_queued = 1;
  Scheduler scheduler(options);  // not started: everything stays queued
  ASSERT_TRUE(
      scheduler.Submit({Spec(servable, 1), Spec(servable, 2)}, nullptr).ok());
  absl::Status refused =
      scheduler.Submit({Spec(servable, 3), Spec(servable, 4)}, nullptr)
          .status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("capacity"));
  EXPECT_TRUE(scheduler.Submit({Spec(servable, 5)}, nullptr).ok());
  EXPECT_EQ(scheduler.Submit({Spec(servable, 6)}, nullptr).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(scheduler.stats().queued, 3);
  EXPECT_EQ(scheduler.stats().rejected, 3);
}

TEST(SchedulerTest, ActiveBatchIsCappedAndTheQueueDrains) {
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(64), 3);
  SteerBos(checkpoint, -10.0f);
  auto servable = MakeServable(checkpoint);
  SchedulerOptions options;
  options.max_batch = 2;
  options.buffer_tokens = 4;
  Scheduler scheduler(options);
  scheduler.Start();
  std::vector<SequenceSpec> specs;
  specs.reserve(64);
  for (int i = 0; i < 5; ++i) specs.push_back(Spec(servable, i));
  auto sequences = scheduler.Submit(specs, nullptr);
  ASSERT_TRUE(sequences.ok());
  // Nobody reads: two sequences fill their buffers, three wait.
  ASSERT_TRUE(WaitFor([&] { return scheduler.stats().tokens_generated == 8; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  SchedulerStats stats = scheduler.stats();
  EXPECT_EQ(stats.active, 2);
  EXPECT_EQ(stats.queued, 3);
  EXPECT_EQ(stats.tokens_generated, 8);
  for (auto& sequence : *sequences) {
    EXPECT_EQ(Drain(*sequence).size(), 64u);
  }
  EXPECT_TRUE(WaitFor([&] { return scheduler.stats().active == 0; }));
}

// Model math runs with subnormal floats flushed (common/denormals.h): on
// Intel cores they cost a slow path per operation.
TEST(SchedulerTest, StepsRunWithDenormalsFlushed) {
  auto servable = MakeServable(MakeCheckpoint(SmallConfig(), 1));
  SchedulerOptions options;
  std::atomic<int> steps{0}, flushed{0};
  options.on_step = [&](int) {  // on the thread that runs the step
    ++steps;
    if (DenormalsFlushedOnThisThread()) ++flushed;
  };
  Scheduler scheduler(options);
  scheduler.Start();
  auto sequences = scheduler.Submit({Spec(servable, 1)}, nullptr);
  ASSERT_TRUE(sequences.ok());
  Drain(*(*sequences)[0]);
  EXPECT_GT(steps.load(), 0);
  EXPECT_EQ(flushed.load(), steps.load());
}

TEST(SchedulerTest, SlowReaderDoesNotStallOthers) {
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(512), 3);
  SteerBos(checkpoint, -10.0f);
  auto servable = MakeServable(checkpoint);
  SchedulerOptions options;
  options.buffer_tokens = 8;
  Scheduler scheduler(options);
  scheduler.Start();
  auto sequences =
      scheduler.Submit({Spec(servable, 1), Spec(servable, 2)}, nullptr);
  ASSERT_TRUE(sequences.ok());
  Sequence& slow = *(*sequences)[0];
  Sequence& fast = *(*sequences)[1];
  EXPECT_EQ(Drain(fast).size(), 512u);
  EXPECT_FALSE(slow.done());
  // The slow one produced no more than its buffer holds.
  EXPECT_LE(scheduler.stats().tokens_generated, 512 + 8);
  EXPECT_EQ(Drain(slow).size(), 512u);
}

TEST(SchedulerTest, PopAllTakesEveryBufferedEventInOrderAndWakesAFullOne) {
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(64), 3);
  SteerBos(checkpoint, -10.0f);
  auto servable = MakeServable(checkpoint);
  SchedulerOptions options;
  options.buffer_tokens = 8;
  Scheduler scheduler(options);
  scheduler.Start();
  auto sequences = scheduler.Submit({Spec(servable, 5)}, nullptr);
  ASSERT_TRUE(sequences.ok());
  Sequence& sequence = *(*sequences)[0];
  // The unread sequence stops at its buffer's bound.
  ASSERT_TRUE(WaitFor([&] { return scheduler.stats().tokens_generated == 8; }));
  std::vector<TokenEvent> events;
  EXPECT_EQ(sequence.PopAll(&events), 8u);
  EXPECT_FALSE(sequence.done());
  // Emptying the full buffer lets the scheduler go on to the end.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!sequence.done() && absl::Now() < deadline) {
    if (sequence.PopAll(&events) == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  ASSERT_TRUE(sequence.done());
  EXPECT_EQ(sequence.PopAll(&events), 0u);
  EXPECT_EQ(EventIds(events),
            ReferenceSample(servable->model, servable->tokenizer.bos(), {},
                            SamplingParams(), 5, 0));
  for (size_t t = 0; t < events.size(); ++t) {
    EXPECT_EQ(events[t].position, static_cast<int>(t + 1));
    EXPECT_EQ(events[t].finish != FinishReason::kNone, t + 1 == events.size());
  }
}

TEST(SchedulerTest, OpenBlasThreadsFollowTheWidestModelWithDecoders) {
  ModelCheckpoint narrow = MakeCheckpoint(SmallConfig(64, 16), 3);
  ModelCheckpoint wide = MakeCheckpoint(SmallConfig(64, 128), 4);
  SteerBos(narrow, -10.0f);
  SteerBos(wide, -10.0f);
  SchedulerOptions options;
  options.num_threads = 1;
  options.buffer_tokens = 1;  // unread sequences stay active
  Scheduler scheduler(options);
  scheduler.Start();
  auto first = scheduler.Submit({Spec(MakeServable(narrow, 1), 1)}, nullptr);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(WaitFor([&] { return scheduler.stats().tokens_generated == 1; }));
  EXPECT_EQ(openblas_get_num_threads(), 1);
  auto second = scheduler.Submit({Spec(MakeServable(wide, 2), 2)}, nullptr);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(WaitFor([&] { return scheduler.stats().tokens_generated == 2; }));
  EXPECT_EQ(openblas_get_num_threads(),
            BlasThreadsFor(EngineWork::kDecoding, wide.config, 1));
  (*second)[0]->Cancel();
  ASSERT_TRUE(WaitFor([&] { return scheduler.stats().decoders == 1; }));
  EXPECT_EQ(openblas_get_num_threads(), 1);
}

TEST(SchedulerTest, CancelledSequencesLeaveAtOnce) {
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(2048), 3);
  SteerBos(checkpoint, -10.0f);
  auto servable = MakeServable(checkpoint);
  SchedulerOptions options;
  options.buffer_tokens = 1 << 20;  // never full: only Cancel can stop them
  Scheduler scheduler(options);
  scheduler.Start();
  std::vector<SequenceSpec> specs;
  specs.reserve(64);
  for (int i = 0; i < 16; ++i) specs.push_back(Spec(servable, i));
  auto sequences = scheduler.Submit(specs, nullptr);
  ASSERT_TRUE(sequences.ok());
  ASSERT_TRUE(WaitFor([&] { return scheduler.stats().tokens_generated > 0; }));
  for (auto& sequence : *sequences) sequence->Cancel();
  ASSERT_TRUE(WaitFor([&] { return scheduler.stats().active == 0; }));
  const int64_t generated = scheduler.stats().tokens_generated;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(scheduler.stats().tokens_generated, generated);
  EXPECT_LT(generated, 16 * 2048);
  TokenEvent event;
  EXPECT_FALSE((*sequences)[0]->Pop(&event));
  EXPECT_TRUE(WaitFor([&] { return scheduler.stats().decoders == 0; }));
}

TEST(SchedulerTest, StopEndsUnfinishedSequencesAsCancelled) {
  auto servable = MakeServable(MakeCheckpoint(SmallConfig(), 1));
  Scheduler scheduler({});
  int notified = 0;
  auto sequences = scheduler.Submit({Spec(servable, 1)}, [&] { ++notified; });
  ASSERT_TRUE(sequences.ok());
  scheduler.Stop();
  EXPECT_EQ(notified, 1);
  TokenEvent event;
  ASSERT_TRUE((*sequences)[0]->Pop(&event));
  EXPECT_EQ(event.finish, FinishReason::kCancelled);
  EXPECT_EQ(event.id, -1);
  EXPECT_TRUE((*sequences)[0]->done());
  EXPECT_EQ(scheduler.Submit({Spec(servable, 2)}, nullptr).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(SchedulerTest, ManyWorkersAndVersionsGiveTheSameTokens) {
  // 64 wide: the scheduler splits only wide models' batches across workers.
  auto v1 = MakeServable(MakeCheckpoint(SmallConfig(32, 64), 21), 1);
  auto v2 = MakeServable(MakeCheckpoint(SmallConfig(32, 64), 22), 2);
  SchedulerOptions options;
  options.num_threads = 3;
  options.max_batch = 16;
  Scheduler scheduler(options);
  scheduler.Start();
  std::vector<SequenceSpec> specs;
  specs.reserve(64);
  SamplingParams params;
  params.temperature = 1.0f;
  for (int i = 0; i < 24; ++i) {
    specs.push_back(Spec(i % 2 == 0 ? v1 : v2, 1000 + i, {i % 26}));
    specs.back().sampling = params;
  }
  std::atomic<int> notifications{0};
  auto sequences = scheduler.Submit(specs, [&] { ++notifications; });
  ASSERT_TRUE(sequences.ok());
  for (int i = 0; i < 24; ++i) {
    const auto& servable = i % 2 == 0 ? v1 : v2;
    EXPECT_EQ(EventIds(Drain(*(*sequences)[i])),
              ReferenceSample(servable->model, servable->tokenizer.bos(),
                              {i % 26}, params, 1000 + i, 0))
        << "sample " << i;
  }
  EXPECT_GT(notifications.load(), 0);
  EXPECT_TRUE(WaitFor([&] { return scheduler.stats().decoders == 0; }));
}

TEST(SchedulerTest, RejectsSpecsThatCannotRun) {
  auto servable = MakeServable(MakeCheckpoint(SmallConfig(8), 1));
  Scheduler scheduler({});
  EXPECT_EQ(
      scheduler.Submit({Spec(servable, 1, std::vector<int>(8, 0))}, nullptr)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      scheduler.Submit({Spec(servable, 1, {27})}, nullptr).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler.Submit({Spec(nullptr, 1)}, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A time limit ends a sequence whose reader does not keep up (its buffer
// full, so it is not stepped) and one still queued behind a full batch.
TEST(SchedulerTest, ATimeLimitEndsWaitingSequences) {
  ModelCheckpoint text = MakeCheckpoint(SmallConfig(16), 4, 1, 3.0, "abc");
  SteerBos(text, -10.0f);
  auto servable = MakeServable(text, 1, DatasetFormat::kText);
  SchedulerOptions options;
  options.max_batch = 1;
  options.buffer_tokens = 8;
  Scheduler scheduler(options);
  scheduler.Start();
  SequenceSpec unread = Spec(servable, 1, {}, /*max_tokens=*/1000);
  unread.time_limit = absl::Milliseconds(100);
  SequenceSpec queued = Spec(servable, 2, {}, 1000);
  queued.time_limit = absl::Milliseconds(50);  // while the first runs
  auto sequences = scheduler.Submit({unread, queued}, nullptr);
  ASSERT_TRUE(sequences.ok());
  absl::SleepFor(absl::Milliseconds(400));
  const std::vector<TokenEvent> first = Drain(*(*sequences)[0]);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first.back().finish, FinishReason::kTimeLimit);
  EXPECT_EQ(first.back().id, -1);
  EXPECT_EQ(first.size(), 9u);  // the full buffer, then the end
  EXPECT_EQ(first.back().generated, 8);
  const std::vector<TokenEvent> second = Drain(*(*sequences)[1]);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second.back().finish, FinishReason::kTimeLimit);
  EXPECT_EQ(second.back().generated, 0);
}

}  // namespace
}  // namespace microgpt
