// Checkpoint files in the safetensors format.
//
// model.safetensors holds the tensors of docs/model.md by their names (wte,
// wpe, lm_head, layer{i}.attn_wq, ...), F32, shapes [out, in], and
// __metadata__:
//
//   microgpt.config  {"n_embd":16,"n_head":4,"n_layer":1,"block_size":16,
//                     "vocab_size":27}
//   microgpt.vocab   ["a","b",...]  (id order, BOS not included; BOS id =
//                    its length)
//   microgpt.step    "1000"
//   microgpt.loss    "2.31"
//   microgpt.format  "text" (absent: "documents", as before the formats)
//   microgpt.val_loss "1.83" (only when the run held out validation data)
//
// Any safetensors reader loads it.
//
// optimizer.safetensors holds what a resumed run needs to continue exactly:
// Adam's moments as "adam.m.<name>" and "adam.v.<name>" (F32, the parameter's
// shape), the data order as "data.order" (I32 [num_documents]), and metadata
// microgpt.adam_step, microgpt.data_epoch, microgpt.data_cursor,
// microgpt.rng_state (four hex words), microgpt.dataset_sha256.
#ifndef MICROGPT_COMMON_CHECKPOINT_H_
#define MICROGPT_COMMON_CHECKPOINT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/dataset.h"
#include "common/parameters.h"
#include "common/rng.h"
#include "common/tokenizer.h"

namespace microgpt {

struct ModelCheckpoint {
  ModelConfig config;
  Tokenizer tokenizer;
  std::vector<float> parameters;  // ParameterLayout(config) order
  int64_t step = 0;
  double loss = 0.0;  // mean training loss of the last step
  DatasetFormat format = DatasetFormat::kDocuments;  // of the training data
  std::optional<double> val_loss;  // validation loss of these weights
};

// What a model file records of its training, read from its header alone
// (listing versions without loading their weights): ModelCheckpoint's fields
// of the same names.
struct ModelRecord {
  int64_t step = 0;
  double loss = 0.0;
  DatasetFormat format = DatasetFormat::kDocuments;
  std::optional<double> val_loss;
};
absl::StatusOr<ModelRecord> ReadModelRecord(const std::string& path);

struct OptimizerCheckpoint {
  int64_t adam_step = 0;
  std::vector<float> m, v;          // ParameterLayout order
  std::vector<int32_t> data_order;  // document indices of the current epoch
  int64_t data_epoch = 0;
  int64_t data_cursor = 0;  // next position in data_order
  Rng::State rng_state{};
  std::string
      dataset_sha256;  // hex of the documents, to refuse another dataset
};

// Serialised bytes of each file; Parse* accept only what Serialize* produce
// for a consistent model (INVALID_ARGUMENT / DATA_LOSS otherwise, never a
// crash).
std::string SerializeModel(const ModelCheckpoint& checkpoint);
absl::StatusOr<ModelCheckpoint> ParseModel(absl::string_view bytes);
std::string SerializeOptimizer(const OptimizerCheckpoint& state,
                               const ParameterLayout& layout);
absl::StatusOr<OptimizerCheckpoint> ParseOptimizer(
    absl::string_view bytes, const ParameterLayout& layout);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_CHECKPOINT_H_
