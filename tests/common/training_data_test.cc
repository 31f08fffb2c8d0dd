// TrainingData: text windows and document epochs, the held-out split and its
// fixed validation set, the fingerprint, and the order's save and restore.
#include "common/training_data.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "common/rng.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace microgpt {
namespace {

using ::testing::HasSubstr;

// Lines of lowercase words; the text's last part is in capitals, so that a
// test can tell which part a character came from.
std::string GeneratedText(int chars, uint64_t seed) {
  Rng rng(seed);
  std::string text;
  while (static_cast<int>(text.size()) < chars) {
    text += static_cast<char>('a' + rng.UniformInt(26));
    if (rng.UniformInt(8) == 0) text += rng.UniformInt(4) == 0 ? '\n' : ' ';
  }
  text.resize(chars);
  return text;
}

std::vector<int> Ids(const Tokenizer& tokenizer, const std::string& text) {
  return tokenizer.Encode(text).value();
}

TEST(TrainingDataTest, TextBatchesAreWindowsOfTheTrainingPart) {
  constexpr int kBlock = 16;
  // 900 lowercase training characters, then 100 held out in capitals.
  std::string held_out = GeneratedText(100, 2);
  std::transform(held_out.begin(), held_out.end(), held_out.begin(), ::toupper);
  const std::string train = GeneratedText(900, 1);
  const Dataset dataset = TextDataset(train + held_out);
  const Tokenizer tokenizer = TokenizerFor(dataset);
  EXPECT_NE(tokenizer.Encode("\n").value().size(), 0u);  // newline is a token
  auto data = TrainingData::Make(dataset, tokenizer, 0.1, kBlock, 5);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->training_size(), 900);

  const std::vector<int> train_ids = Ids(tokenizer, train);
  std::set<int64_t> offsets;
  std::vector<const std::vector<int>*> batch;
  for (int step = 0; step < 200; ++step) {
    data->NextBatch(8, &batch);
    ASSERT_EQ(batch.size(), 8u);
    for (const std::vector<int>* window : batch) {
      ASSERT_EQ(window->size(), kBlock + 1u);
      const auto found = std::search(train_ids.begin(), train_ids.end(),
                                     window->begin(), window->end());
      ASSERT_NE(found, train_ids.end()) << "not a window of the training part";
      offsets.insert(found - train_ids.begin());
    }
  }
  // Offsets spread over [0, 900 - 16): the last window can end at character
  // 899, the last of the training part.
  EXPECT_GT(offsets.size(), 500u);
  EXPECT_LE(*offsets.rbegin(), 900 - kBlock - 1);
  EXPECT_GT(*offsets.rbegin(), 850);
  EXPECT_LT(*offsets.begin(), 50);
}

TEST(TrainingDataTest, TextBatchesFollowTheSeed) {
  const Dataset dataset = TextDataset(GeneratedText(2000, 3));
  const Tokenizer tokenizer = TokenizerFor(dataset);
  auto batches = [&](uint64_t seed) {
    TrainingData data =
        TrainingData::Make(dataset, tokenizer, 0, 8, seed).value();
    std::vector<std::vector<int>> seen;
    std::vector<const std::vector<int>*> batch;
    for (int step = 0; step < 10; ++step) {
      data.NextBatch(4, &batch);
      for (const auto* window : batch) seen.push_back(*window);
    }
    return seen;
  };
  EXPECT_EQ(batches(1), batches(1));
  EXPECT_NE(batches(1), batches(2));
}

TEST(TrainingDataTest, TextValidationIsEveryFullWindowAtStrideBlockSize) {
  constexpr int kBlock = 8;
  const std::string text = GeneratedText(1000, 4);
  const Dataset dataset = TextDataset(text);
  const Tokenizer tokenizer = TokenizerFor(dataset);
  auto data = TrainingData::Make(dataset, tokenizer, 0.25, kBlock, 1);
  ASSERT_TRUE(data.ok()) << data.status();
  // 250 held-out characters: windows start at 0, 8, ..., 240 (241 + 8 < 250).
  const std::vector<int> held_out = Ids(tokenizer, text.substr(750));
  ASSERT_EQ(data->validation().size(), (250u - 1) / kBlock);
  for (size_t j = 0; j < data->validation().size(); ++j) {
    const std::vector<int> expected(held_out.begin() + j * kBlock,
                                    held_out.begin() + j * kBlock + kBlock + 1);
    EXPECT_EQ(data->validation()[j], expected) << "window " << j;
  }
  EXPECT_EQ(data->validation_targets(), 31 * kBlock);
}

TEST(TrainingDataTest, HeldOutDocumentsDoNotDependOnTheSeed) {
  std::vector<std::string> docs;
  for (int i = 0; i < 200; ++i) docs.push_back(GeneratedText(3 + i % 7, i));
  for (std::string& d : docs) std::replace(d.begin(), d.end(), '\n', 'x');
  const Dataset dataset = DocumentsDataset(docs);
  const Tokenizer tokenizer = TokenizerFor(dataset);
  auto held_out = [&](uint64_t seed) {
    return TrainingData::Make(dataset, tokenizer, 0.1, 16, seed)
        .value()
        .validation();
  };
  const std::vector<std::vector<int>> a = held_out(1);
  EXPECT_EQ(a.size(), 20u);
  EXPECT_EQ(a, held_out(99));
  // Disjoint from what training visits: an epoch covers the 180 others.
  TrainingData data =
      TrainingData::Make(dataset, tokenizer, 0.1, 16, 1).value();
  EXPECT_EQ(data.training_size(), 180);
  std::vector<const std::vector<int>*> batch;
  data.NextBatch(180, &batch);
  std::multiset<std::vector<int>> trained;
  for (const auto* doc : batch) trained.insert(*doc);
  std::multiset<std::vector<int>> all;
  for (const std::string& d : docs)
    all.insert(tokenizer.EncodeDocument(d).value());
  for (const auto& doc : a) all.erase(all.find(doc));
  EXPECT_EQ(trained, all);
  // Targets: each document's first min(block_size, length + 1) positions.
  int64_t targets = 0;
  for (const auto& doc : a) targets += std::min<int64_t>(16, doc.size() - 1);
  EXPECT_EQ(data.validation_targets(), targets);
}

TEST(TrainingDataTest, FingerprintOfPlainDocumentsIsTheOldOne) {
  const std::vector<std::string> docs = {"emma", "olivia", "ava"};
  Sha256Hasher hasher;
  for (const std::string& d : docs) {
    hasher.Update(d);
    hasher.Update("\n");
  }
  const std::string old_fingerprint = hasher.HexDigest().value();
  const Dataset dataset = DocumentsDataset(docs);
  const Tokenizer tokenizer = TokenizerFor(dataset);
  EXPECT_EQ(TrainingData::Make(dataset, tokenizer, 0, 16, 1)->fingerprint(),
            old_fingerprint);
  // The format and the split are part of it.
  EXPECT_NE(TrainingData::Make(dataset, tokenizer, 0.34, 16, 1)->fingerprint(),
            old_fingerprint);
  const Dataset text = TextDataset(GeneratedText(100, 1));
  EXPECT_NE(
      TrainingData::Make(text, TokenizerFor(text), 0, 16, 1)->fingerprint(),
      TrainingData::Make(text, TokenizerFor(text), 0.2, 16, 1)->fingerprint());
}

TEST(TrainingDataTest, PartsTooSmallAreRefusedWithTheReason) {
  const Dataset text = TextDataset(GeneratedText(100, 1));
  const Tokenizer tokenizer = TokenizerFor(text);
  EXPECT_THAT(
      TrainingData::Make(text, tokenizer, 0.1, 16, 1),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("validation text (val_fraction 0.1) has 10 "
                         "characters, fewer than block_size + 1 = 17")));
  // A fraction too small to hold out a single character is refused too,
  // not trained without validation.
  EXPECT_THAT(TrainingData::Make(text, tokenizer, 0.001, 16, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("has 0 characters, fewer than")));
  EXPECT_THAT(TrainingData::Make(text, tokenizer, 0, 128, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("training text has 100 characters")));
  const Dataset docs = DocumentsDataset({"ab"});
  EXPECT_THAT(TrainingData::Make(docs, TokenizerFor(docs), 0.5, 16, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("leaves none to train on")));
  EXPECT_THAT(TrainingData::Make(docs, TokenizerFor(docs), 0.6, 16, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("val_fraction must be in [0, 0.5]")));
  EXPECT_THAT(TrainingData::Make(TextDataset("xyz\n" + GeneratedText(100, 1)),
                                 tokenizer, 0, 16, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not in the vocabulary")));
}

TEST(TrainingDataTest, RestoredOrderContinuesExactly) {
  const Dataset text = TextDataset(GeneratedText(3000, 7));
  const Tokenizer tokenizer = TokenizerFor(text);
  TrainingData a = TrainingData::Make(text, tokenizer, 0.1, 16, 3).value();
  std::vector<const std::vector<int>*> batch;
  for (int i = 0; i < 5; ++i) a.NextBatch(4, &batch);
  OptimizerCheckpoint saved;
  a.SaveOrder(&saved);
  TrainingData b = TrainingData::Make(text, tokenizer, 0.1, 16, 3).value();
  ASSERT_TRUE(b.RestoreOrder(saved).ok());
  for (int i = 0; i < 5; ++i) {
    a.NextBatch(4, &batch);
    std::vector<std::vector<int>> from_a;
    for (const auto* w : batch) from_a.push_back(*w);
    b.NextBatch(4, &batch);
    std::vector<std::vector<int>> from_b;
    for (const auto* w : batch) from_b.push_back(*w);
    EXPECT_EQ(from_a, from_b);
  }
  // Another split is another dataset.
  TrainingData c = TrainingData::Make(text, tokenizer, 0.2, 16, 3).value();
  EXPECT_THAT(c.RestoreOrder(saved),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("format or val_fraction")));
}

}  // namespace
}  // namespace microgpt
