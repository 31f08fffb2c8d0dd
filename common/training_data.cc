#include "common/training_data.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace microgpt {
namespace {

// The data order has its own stream, apart from the initialisation's.
constexpr uint64_t kDataSeedOffset = 0x9e3779b97f4a7c15ULL;

// Fisher-Yates over 0..n-1.
std::vector<int32_t> Shuffled(size_t n, Rng& rng) {
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  for (size_t i = order.size(); i > 1; --i) {
    std::swap(order[i - 1], order[rng.UniformInt(i)]);
  }
  return order;
}

absl::StatusOr<std::string> Fingerprint(const Dataset& dataset,
                                        double val_fraction) {
  Sha256Hasher hasher;
  const bool legacy =
      dataset.format == DatasetFormat::kDocuments && val_fraction == 0;
  if (!legacy) {
    hasher.Update(
        absl::StrFormat("microgpt dataset format=%s val_fraction=%.17g\n",
                        DatasetFormatName(dataset.format), val_fraction));
  }
  if (dataset.format == DatasetFormat::kText) {
    hasher.Update(dataset.text);
  } else {
    for (const std::string& doc : dataset.documents) {
      hasher.Update(doc);
      hasher.Update("\n");
    }
  }
  return hasher.HexDigest();
}

}  // namespace

Tokenizer TokenizerFor(const Dataset& dataset) {
  return dataset.format == DatasetFormat::kText
             ? Tokenizer::FromDocuments({dataset.text})
             : Tokenizer::FromDocuments(dataset.documents);
}

TrainingData::TrainingData(DatasetFormat format, int block_size, uint64_t seed)
    : format_(format), block_size_(block_size), rng_(seed + kDataSeedOffset) {}

absl::StatusOr<TrainingData> TrainingData::Make(const Dataset& dataset,
                                                const Tokenizer& tokenizer,
                                                double val_fraction,
                                                int block_size, uint64_t seed) {
  if (!(val_fraction >= 0 && val_fraction <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("val_fraction must be in [0, 0.5], got ", val_fraction));
  }
  TrainingData data(dataset.format, block_size, seed);
  MICROGPT_ASSIGN_OR_RETURN(data.fingerprint_,
                            Fingerprint(dataset, val_fraction));
  const int64_t T = block_size;

  if (dataset.format == DatasetFormat::kText) {
    absl::StatusOr<std::vector<int>> ids = tokenizer.Encode(dataset.text);
    if (!ids.ok()) return ids.status();
    const int64_t n = static_cast<int64_t>(ids->size());
    const int64_t held_out =
        static_cast<int64_t>(std::floor(val_fraction * static_cast<double>(n)));
    const int64_t train = n - held_out;
    if (train < T + 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the training text has ", train,
          " characters, fewer than block_size + 1 = ", T + 1, " (one window)"));
    }
    if (val_fraction > 0 && held_out < T + 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the validation text (val_fraction ", val_fraction, ") has ",
          held_out, " characters, fewer than block_size + 1 = ", T + 1,
          " (one window); raise val_fraction or give more text"));
    }
    for (int64_t start = train; start + T + 1 <= n; start += T) {
      data.validation_.emplace_back(ids->begin() + start,
                                    ids->begin() + start + T + 1);
      data.validation_targets_ += T;
    }
    ids->resize(train);
    data.text_ = *std::move(ids);
    return data;
  }

  const int64_t n = static_cast<int64_t>(dataset.documents.size());
  if (n == 0) return absl::InvalidArgumentError("the dataset has no documents");
  int64_t held_out = 0;
  if (val_fraction > 0) {
    held_out = std::max<int64_t>(
        1, std::llround(val_fraction * static_cast<double>(n)));
    if (held_out >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("val_fraction ", val_fraction, " of ", n,
                       " documents leaves none to train on"));
    }
  }
  std::vector<bool> validation(n, false);
  Rng validation_rng(kValidationSeed);
  const std::vector<int32_t> picked = Shuffled(n, validation_rng);
  for (int64_t i = 0; i < held_out; ++i) validation[picked[i]] = true;
  for (int64_t i = 0; i < n; ++i) {
    absl::StatusOr<std::vector<int>> doc =
        tokenizer.EncodeDocument(dataset.documents[i]);
    if (!doc.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("document ", i + 1, ": ", doc.status().message()));
    }
    if (validation[i]) {
      data.validation_targets_ +=
          std::min<int64_t>(T, static_cast<int64_t>(doc->size()) - 1);
      data.validation_.push_back(*std::move(doc));
    } else {
      data.documents_.push_back(*std::move(doc));
    }
  }
  data.NextEpoch();
  return data;
}

int64_t TrainingData::training_size() const {
  return format_ == DatasetFormat::kText
             ? static_cast<int64_t>(text_.size())
             : static_cast<int64_t>(documents_.size());
}

void TrainingData::NextEpoch() {
  order_ = Shuffled(documents_.size(), rng_);
  cursor_ = 0;
}

void TrainingData::NextBatch(int batch_size,
                             std::vector<const std::vector<int>*>* batch) {
  batch->clear();
  if (format_ == DatasetFormat::kText) {
    windows_.resize(std::max<size_t>(windows_.size(), batch_size));
    const uint64_t offsets = text_.size() - block_size_;
    for (int b = 0; b < batch_size; ++b) {
      const auto start = text_.begin() + rng_.UniformInt(offsets);
      windows_[b].assign(start, start + block_size_ + 1);
      batch->push_back(&windows_[b]);
    }
    return;
  }
  for (int b = 0; b < batch_size; ++b) {
    if (cursor_ == static_cast<int64_t>(order_.size())) {
      ++epoch_;
      NextEpoch();
    }
    batch->push_back(&documents_[order_[cursor_++]]);
  }
}

void TrainingData::SaveOrder(OptimizerCheckpoint* state) const {
  state->data_order = order_;
  state->data_epoch = epoch_;
  state->data_cursor = cursor_;
  state->rng_state = rng_.state();
  state->dataset_sha256 = fingerprint_;
}

absl::Status TrainingData::RestoreOrder(const OptimizerCheckpoint& state) {
  if (state.dataset_sha256 != fingerprint_) {
    return absl::FailedPreconditionError(
        "the dataset differs from the one the checkpoint was trained on "
        "(its content, format or val_fraction)");
  }
  const int64_t n = static_cast<int64_t>(documents_.size());
  if (static_cast<int64_t>(state.data_order.size()) != n ||
      state.data_cursor < 0 || state.data_cursor > n) {
    return absl::FailedPreconditionError(
        "the optimizer state's data order does not match the dataset");
  }
  for (int32_t index : state.data_order) {
    if (index < 0 || index >= n) {
      return absl::FailedPreconditionError(
          "the optimizer state's data order is out of range");
    }
  }
  order_ = state.data_order;
  epoch_ = state.data_epoch;
  cursor_ = state.data_cursor;
  rng_ = Rng::FromState(state.rng_state);
  return absl::OkStatus();
}

}  // namespace microgpt
