// TrainingRun: the loop learns, is deterministic for a seed, and a run resumed
// from its snapshots continues exactly as if it had not stopped.
#include "common/training_run.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/adam.h"
#include "common/checkpoint.h"
#include "common/decoder.h"
#include "common/model.h"
#include "common/rng.h"
#include "common/training_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microgpt {
namespace {

// Words over a small alphabet with a strong structure (consonant-vowel pairs)
// so a tiny model can learn them quickly.
Dataset SyntheticDocuments(int count, uint64_t seed) {
  const std::string consonants = "bdklmnrst";
  const std::string vowels = "aeiou";
  Rng rng(seed);
  std::vector<std::string> docs;
  for (int i = 0; i < count; ++i) {
    std::string doc;
    const int pairs = 1 + static_cast<int>(rng.UniformInt(4));
    for (int p = 0; p < pairs; ++p) {
      doc += consonants[rng.UniformInt(consonants.size())];
      doc += vowels[rng.UniformInt(vowels.size())];
    }
    docs.push_back(doc);
  }
  return DocumentsDataset(std::move(docs));
}

TrainingOptions SmallOptions(int64_t steps, int threads = 1) {
  TrainingOptions options;
  options.threads = threads;
  options.config.n_embd = 16;
  options.config.n_head = 4;
  options.config.n_layer = 1;
  options.config.block_size = 12;
  options.steps = steps;
  options.batch_size = 4;
  options.seed = 7;
  return options;
}

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(TrainingRunTest, LossFallsWellBelowUniform) {
  auto run = TrainingRun::Start(SmallOptions(300), SyntheticDocuments(500, 1));
  ASSERT_TRUE(run.ok()) << run.status();
  const float uniform =
      std::log(static_cast<float>((*run)->tokenizer().vocab_size()));
  double first = 0, last = 0;
  for (int i = 0; i < 300; ++i) {
    const StepStats s = (*run)->Step();
    EXPECT_EQ(s.step, i + 1);
    EXPECT_GT(s.tokens, 0);
    if (i < 20) first += s.loss / 20;
    if (i >= 280) last += s.loss / 20;
  }
  EXPECT_TRUE((*run)->done());
  // The words' true entropy is about 1.82 nats per token (uniform: 2.71).
  EXPECT_GT(first, last);
  EXPECT_LT(last, uniform - 0.7) << "first " << first << " last " << last;
  EXPECT_GT(last, 1.7);
}

TEST(TrainingRunTest, SameSeedSameRun) {
  const auto docs = SyntheticDocuments(50, 2);
  // Threads split each batch the same way every time, so a threaded run is
  // as reproducible as a single-threaded one.
  for (const int threads : {1, 2}) {
    SCOPED_TRACE(testing::Message() << threads << " threads");
    auto a = TrainingRun::Start(SmallOptions(20, threads), docs);
    auto b = TrainingRun::Start(SmallOptions(20, threads), docs);
    ASSERT_TRUE(a.ok() && b.ok());
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ((*a)->Step().loss, (*b)->Step().loss) << "step " << i;
    }
    EXPECT_TRUE(BitEqual((*a)->parameters(), (*b)->parameters()));
  }

  TrainingOptions other = SmallOptions(20);
  other.seed = 8;
  auto c = TrainingRun::Start(other, docs);
  ASSERT_TRUE(c.ok());
  EXPECT_NE((*c)->Step().loss,
            TrainingRun::Start(SmallOptions(20), docs).value()->Step().loss);
}

class TrainingRunResumeTest : public ::testing::TestWithParam<int> {};

TEST_P(TrainingRunResumeTest, ContinuesExactlyAcrossEpochs) {
  const int threads = GetParam();
  // 30 documents at batch 4: the split at step 10 falls mid-epoch and the run
  // crosses several epoch boundaries (reshuffles) after it.
  const auto docs = SyntheticDocuments(30, 3);
  const int64_t n = 10, m = 25;
  auto whole = TrainingRun::Start(SmallOptions(n + m, threads), docs);
  ASSERT_TRUE(whole.ok());
  std::vector<float> whole_losses;
  for (int i = 0; i < n + m; ++i) whole_losses.push_back((*whole)->Step().loss);

  auto first = TrainingRun::Start(SmallOptions(n + m, threads), docs);
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < n; ++i) EXPECT_EQ((*first)->Step().loss, whole_losses[i]);
  // Through the serialised files, as a restarted process would see them.
  const ParameterLayout& layout = (*first)->layout();
  auto model =
      ParseModel(SerializeModel((*first)->ModelSnapshot(1.5, std::nullopt)));
  auto optimizer = ParseOptimizer(
      SerializeOptimizer((*first)->OptimizerSnapshot(), layout), layout);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  first->reset();

  auto resumed = TrainingRun::Resume(SmallOptions(n + m, threads), docs,
                                     *std::move(model), *std::move(optimizer));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->step(), n);
  for (int i = n; i < n + m; ++i) {
    const StepStats s = (*resumed)->Step();
    EXPECT_EQ(s.step, i + 1);
    EXPECT_EQ(s.loss, whole_losses[i]) << "step " << i + 1;
  }
  EXPECT_TRUE(BitEqual((*resumed)->parameters(), (*whole)->parameters()));
}

INSTANTIATE_TEST_SUITE_P(Threads, TrainingRunResumeTest,
                         ::testing::Values(1, 2));

TEST(TrainingRunTest, ResumeRefusesAnotherDataset) {
  const auto docs = SyntheticDocuments(30, 4);
  auto run = TrainingRun::Start(SmallOptions(10), docs);
  ASSERT_TRUE(run.ok());
  (*run)->Step();
  auto other = docs;
  other.documents[0] += "a";
  auto resumed = TrainingRun::Resume(SmallOptions(10), other,
                                     (*run)->ModelSnapshot(0, std::nullopt),
                                     (*run)->OptimizerSnapshot());
  EXPECT_EQ(resumed.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(TrainingRunTest, RejectsBadOptions) {
  const auto docs = SyntheticDocuments(10, 5);
  TrainingOptions options = SmallOptions(10);
  options.config.n_head = 3;  // does not divide 16
  EXPECT_EQ(TrainingRun::Start(options, docs).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = SmallOptions(0);
  EXPECT_EQ(TrainingRun::Start(options, docs).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const int threads : {0, 65}) {
    EXPECT_EQ(
        TrainingRun::Start(SmallOptions(10, threads), docs).status().code(),
        absl::StatusCode::kInvalidArgument);
  }
  options = SmallOptions(10);
  options.adam.lr = -1;
  EXPECT_EQ(TrainingRun::Start(options, docs).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TrainingRun::Start(SmallOptions(10), DocumentsDataset({}))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// The mean of -log p(target) over every target position of `sequences`,
// through the decoder (one token at a time over a fresh KV cache): another
// code path than TrainingGraph's batched forward.
double DecoderLoss(const ModelConfig& config, const std::vector<float>& params,
                   const std::vector<std::vector<int>>& sequences) {
  const Model model = Model::FromParameters(config, params).value();
  Decoder decoder(model, 1);
  std::vector<float> logits(config.vocab_size);
  double total = 0;
  int64_t count = 0;
  for (const std::vector<int>& tokens : sequences) {
    KVCache cache(config);
    const int n = std::min<int>(config.block_size, tokens.size() - 1);
    for (int t = 0; t < n; ++t) {
      decoder.Step(tokens[t], &cache, logits.data());
      const float max = *std::max_element(logits.begin(), logits.end());
      double sum = 0;
      for (float l : logits) sum += std::exp(static_cast<double>(l - max));
      total -= logits[tokens[t + 1]] - max - std::log(sum);
      ++count;
    }
  }
  return total / count;
}

std::string SyntheticText(int chars, uint64_t seed) {
  const Dataset words = SyntheticDocuments(chars / 3, seed);
  std::string text;
  for (size_t i = 0; i < words.documents.size(); ++i) {
    text += words.documents[i];
    text += i % 7 == 6 ? ".\n" : " ";
  }
  text.resize(chars);
  return text;
}

class TrainingRunValidationTest
    : public ::testing::TestWithParam<DatasetFormat> {
 protected:
  Dataset MakeDataset() const {
    return GetParam() == DatasetFormat::kText
               ? TextDataset(SyntheticText(4000, 8))
               : SyntheticDocuments(300, 8);
  }
};

TEST_P(TrainingRunValidationTest, EqualsAnIndependentComputation) {
  TrainingOptions options = SmallOptions(40);
  options.val_fraction = 0.1;
  auto run = TrainingRun::Start(options, MakeDataset());
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_TRUE((*run)->has_validation());
  EXPECT_EQ((*run)->format(), GetParam());
  for (int i = 0; i < 40; ++i) (*run)->Step();
  const double val = (*run)->Evaluate();
  const TrainingData data =
      TrainingData::Make(MakeDataset(), (*run)->tokenizer(), 0.1,
                         options.config.block_size, options.seed)
          .value();
  const double expected = DecoderLoss((*run)->options().config,
                                      (*run)->parameters(), data.validation());
  EXPECT_NEAR(val, expected, 1e-4 * expected);
  // The same weights give the same number, and evaluating changes nothing.
  EXPECT_EQ((*run)->Evaluate(), val);
  EXPECT_LT(val, std::log((*run)->tokenizer().vocab_size()));
}

TEST_P(TrainingRunValidationTest, EvaluatingDoesNotChangeTheRun) {
  TrainingOptions options = SmallOptions(20);
  options.val_fraction = 0.1;
  auto plain = TrainingRun::Start(options, MakeDataset());
  auto evaluated = TrainingRun::Start(options, MakeDataset());
  ASSERT_TRUE(plain.ok() && evaluated.ok());
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ((*plain)->Step().loss, (*evaluated)->Step().loss);
    if (i % 5 == 0) (*evaluated)->Evaluate();
  }
  EXPECT_TRUE(BitEqual((*plain)->parameters(), (*evaluated)->parameters()));
}

TEST_P(TrainingRunValidationTest, ResumeContinuesExactly) {
  TrainingOptions options = SmallOptions(16);
  options.val_fraction = 0.1;
  auto whole = TrainingRun::Start(options, MakeDataset());
  auto first = TrainingRun::Start(options, MakeDataset());
  ASSERT_TRUE(whole.ok() && first.ok());
  for (int i = 0; i < 16; ++i) (*whole)->Step();
  for (int i = 0; i < 6; ++i) (*first)->Step();
  const ParameterLayout& layout = (*first)->layout();
  auto model = ParseModel(
      SerializeModel((*first)->ModelSnapshot(2.0, (*first)->Evaluate())));
  auto optimizer = ParseOptimizer(
      SerializeOptimizer((*first)->OptimizerSnapshot(), layout), layout);
  ASSERT_TRUE(model.ok() && optimizer.ok());
  EXPECT_EQ(model->format, GetParam());
  ASSERT_TRUE(model->val_loss.has_value());
  auto resumed = TrainingRun::Resume(options, MakeDataset(), *std::move(model),
                                     *std::move(optimizer));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  while (!(*resumed)->done()) (*resumed)->Step();
  EXPECT_TRUE(BitEqual((*resumed)->parameters(), (*whole)->parameters()));
}

INSTANTIATE_TEST_SUITE_P(Formats, TrainingRunValidationTest,
                         ::testing::Values(DatasetFormat::kDocuments,
                                           DatasetFormat::kText),
                         [](const auto& info) {
                           return std::string(DatasetFormatName(info.param));
                         });

TEST(TrainingRunTest, TextLossFallsBelowUniform) {
  TrainingOptions options = SmallOptions(300);
  options.val_fraction = 0.1;
  options.adam.lr = 0.01f;
  auto run = TrainingRun::Start(options, TextDataset(SyntheticText(20000, 9)));
  ASSERT_TRUE(run.ok()) << run.status();
  const double before = (*run)->Evaluate();
  while (!(*run)->done()) {
    const StepStats s = (*run)->Step();
    EXPECT_EQ(s.tokens, 4 * 12);  // every position of every window
  }
  const double after = (*run)->Evaluate();
  EXPECT_LT(after, before - 0.8) << "before " << before << " after " << after;
}

TEST(TrainingRunTest, StartFromKeepsTheWeightsWithAFreshOptimizer) {
  auto base = TrainingRun::Start(SmallOptions(30), SyntheticDocuments(100, 1));
  ASSERT_TRUE(base.ok());
  while (!(*base)->done()) (*base)->Step();
  const ModelCheckpoint published = (*base)->ModelSnapshot(2, std::nullopt);

  // Fine-tuning on text whose characters the model knows: same weights at
  // step 0, the new dataset's format.
  TrainingOptions options = SmallOptions(10);
  options.config.n_embd = 32;  // ignored: the sizes are the checkpoint's
  const Dataset text = TextDataset("babadolikeremosutanabodi");
  auto tuned = TrainingRun::StartFrom(options, text, published);
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  EXPECT_EQ((*tuned)->step(), 0);
  EXPECT_EQ((*tuned)->options().config, published.config);
  EXPECT_TRUE(BitEqual((*tuned)->parameters(), published.parameters));
  EXPECT_EQ((*tuned)->ModelSnapshot(0, std::nullopt).format,
            DatasetFormat::kText);
  (*tuned)->Step();
  EXPECT_FALSE(BitEqual((*tuned)->parameters(), published.parameters));

  // Characters outside the vocabulary are named, newline included.
  const auto refused = TrainingRun::StartFrom(
      options, TextDataset("badZebra\nlinebabadolikeremosu"), published);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(refused.status().message());
  EXPECT_THAT(message, ::testing::HasSubstr("'\\n' (U+000A), 'Z' (U+005A)"));
  EXPECT_THAT(message, ::testing::Not(::testing::HasSubstr("'b'")));
}

TEST(TrainingRunTest, GradientClipping) {
  const Dataset docs = SyntheticDocuments(50, 3);
  auto plain = TrainingRun::Start(SmallOptions(5), docs);
  TrainingOptions loose = SmallOptions(5);
  loose.grad_clip = 1e9f;  // above any norm: changes nothing
  auto unclipped = TrainingRun::Start(loose, docs);
  TrainingOptions tight = SmallOptions(5);
  tight.grad_clip = 1e-3f;
  auto clipped = TrainingRun::Start(tight, docs);
  ASSERT_TRUE(plain.ok() && unclipped.ok() && clipped.ok());
  for (int i = 0; i < 5; ++i) {
    const StepStats s = (*plain)->Step();
    EXPECT_GT(s.grad_norm, 1e-3f);
    EXPECT_EQ((*unclipped)->Step().grad_norm, s.grad_norm);
    (*clipped)->Step();
  }
  EXPECT_TRUE(BitEqual((*plain)->parameters(), (*unclipped)->parameters()));
  EXPECT_FALSE(BitEqual((*plain)->parameters(), (*clipped)->parameters()));
}

TEST(TrainingRunTest, RejectsBadScheduleAndInitOptions) {
  const Dataset docs = SyntheticDocuments(10, 5);
  auto code = [&](void (*change)(TrainingOptions&)) {
    TrainingOptions options = SmallOptions(10);
    change(options);
    return TrainingRun::Start(options, docs).status().code();
  };
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code([](TrainingOptions& o) { o.adam.warmup_steps = 10; }),
            kInvalid);
  EXPECT_EQ(code([](TrainingOptions& o) { o.adam.warmup_steps = -1; }),
            kInvalid);
  EXPECT_EQ(code([](TrainingOptions& o) { o.adam.min_lr = 1; }), kInvalid);
  EXPECT_EQ(code([](TrainingOptions& o) { o.init_std = 0; }), kInvalid);
  EXPECT_EQ(code([](TrainingOptions& o) { o.grad_clip = -1; }), kInvalid);
  EXPECT_EQ(code([](TrainingOptions& o) { o.val_fraction = 0.7; }), kInvalid);
  EXPECT_EQ(code([](TrainingOptions& o) { o.adam.warmup_steps = 9; }),
            absl::StatusCode::kOk);
}

TEST(AdamTest, Schedules) {
  AdamOptions options;
  options.lr = 1.0f;
  options.num_steps = 100;
  // The reference: linear from lr at step 0 to lr / 100 at the last step.
  EXPECT_FLOAT_EQ(Adam(options, 1).LearningRate(0), 1.0f);
  EXPECT_NEAR(Adam(options, 1).LearningRate(99), 0.01f, 1e-6f);
  // A warmup of 9 steps, then the decay over the other 100.
  options.warmup_steps = 9;
  options.num_steps = 109;
  const Adam warm(options, 1);
  EXPECT_FLOAT_EQ(warm.LearningRate(0), 0.1f);
  EXPECT_FLOAT_EQ(warm.LearningRate(8), 0.9f);
  EXPECT_FLOAT_EQ(warm.LearningRate(9), 1.0f);
  EXPECT_NEAR(warm.LearningRate(59), 0.5f, 1e-6f);
  options.schedule = LearningRateSchedule::kCosine;
  options.min_lr = 0.1f;
  const Adam cosine(options, 1);
  EXPECT_FLOAT_EQ(cosine.LearningRate(9), 1.0f);
  EXPECT_NEAR(cosine.LearningRate(59), 0.55f, 1e-6f);  // halfway
  EXPECT_NEAR(cosine.LearningRate(108), 0.1f, 1e-3f);
  for (int64_t step = 10; step < 109; ++step) {
    EXPECT_LE(cosine.LearningRate(step), cosine.LearningRate(step - 1));
    EXPECT_GE(cosine.LearningRate(step), 0.1f);
  }
}

}  // namespace
}  // namespace microgpt
