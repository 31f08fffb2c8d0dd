// TrainingRun: the loop learns, is deterministic for a seed, and a run resumed
// from its snapshots continues exactly as if it had not stopped.
#include "common/training_run.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "common/rng.h"
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

}  // namespace
}  // namespace microgpt
