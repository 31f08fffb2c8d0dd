// TrainingData: a dataset encoded for training, split into its training and
// validation parts, and the seeded order in which training visits it.
//
// Documents (docs/model.md): each is [BOS] + characters + [BOS]; a batch is
// the next batch_size documents of a Fisher-Yates shuffle, reshuffled every
// epoch. Held out with val_fraction: round(val_fraction * documents), at
// least one, chosen by a fixed seed (kValidationSeed), not the run's, so runs
// with different seeds validate on the same documents.
//
// Text: the whole text is one stream of character ids, newline included, no
// BOS. The last floor(val_fraction * characters) characters are held out
// (nanoGPT's prepare.py with 0.1). A batch is batch_size windows of
// block_size + 1 characters at offsets drawn uniformly from
// [0, train characters - block_size) (nanoGPT's get_batch): each predicts
// characters 1..block_size of its window from those before.
//
// The validation set is fixed: text, every full window of block_size + 1
// characters of the held-out part at stride block_size (windows 0..T,
// T..2T, ...); documents, the held-out documents. So the same weights always
// give the same validation loss.
//
//   auto data = TrainingData::Make(dataset, tokenizer, 0.1, block_size, seed);
//   data->NextBatch(batch_size, &batch);     // pointers into the data
//   for (const auto& sequence : data->validation()) ...
#ifndef MICROGPT_COMMON_TRAINING_DATA_H_
#define MICROGPT_COMMON_TRAINING_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/checkpoint.h"
#include "common/dataset.h"
#include "common/rng.h"
#include "common/tokenizer.h"

namespace microgpt {

// The seed of the documents held out for validation.
inline constexpr uint64_t kValidationSeed = 0x76616c6964617465ULL;

// The vocabulary a new model of `dataset` gets: its distinct characters
// (text: newline included) and BOS.
Tokenizer TokenizerFor(const Dataset& dataset);

class TrainingData {
 public:
  // Encodes `dataset` with `tokenizer` and holds out val_fraction of it
  // (in [0, 0.5]); `seed` draws the training order. INVALID_ARGUMENT when a
  // character is not in the vocabulary (naming it and where), or a part is
  // too small: text needs block_size + 1 characters in each part, documents
  // at least one training document.
  static absl::StatusOr<TrainingData> Make(const Dataset& dataset,
                                           const Tokenizer& tokenizer,
                                           double val_fraction, int block_size,
                                           uint64_t seed);

  DatasetFormat format() const { return format_; }
  // SHA-256 (hex) of what training reads: the format, the split and the
  // content. For documents with nothing held out it is the hash of the
  // documents alone, as checkpoints from before the formats record.
  const std::string& fingerprint() const { return fingerprint_; }

  // The next batch_size training sequences, as pointers that stay valid
  // until the next call. Each has at least 2 tokens.
  void NextBatch(int batch_size, std::vector<const std::vector<int>*>* batch);

  // The validation sequences (empty when nothing is held out), and how many
  // target positions they have for a model of block_size: what the mean
  // validation loss is taken over.
  const std::vector<std::vector<int>>& validation() const {
    return validation_;
  }
  int64_t validation_targets() const { return validation_targets_; }
  // Training characters (text) or documents (documents).
  int64_t training_size() const;

  // The order's state, to save with the optimizer (data_order, data_epoch,
  // data_cursor, rng_state) and to continue from exactly.
  void SaveOrder(OptimizerCheckpoint* state) const;
  // FAILED_PRECONDITION when `state` does not fit this data.
  absl::Status RestoreOrder(const OptimizerCheckpoint& state);

 private:
  TrainingData(DatasetFormat format, int block_size, uint64_t seed);
  void NextEpoch();

  DatasetFormat format_;
  int block_size_;
  std::string fingerprint_;
  std::vector<std::vector<int>> validation_;
  int64_t validation_targets_ = 0;
  Rng rng_;

  // Documents: the training documents, encoded, and the epoch's order.
  std::vector<std::vector<int>> documents_;
  std::vector<int32_t> order_;
  int64_t epoch_ = 0, cursor_ = 0;
  // Text: the training ids, and the batch's windows (reused).
  std::vector<int> text_;
  std::vector<std::vector<int>> windows_;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_TRAINING_DATA_H_
