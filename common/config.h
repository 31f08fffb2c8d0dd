// ModelConfig: the sizes of a microgpt model (see docs/model.md).
// Defaults are the reference model: n_embd 16, n_head 4, n_layer 1, block 16.
#ifndef MICROGPT_COMMON_CONFIG_H_
#define MICROGPT_COMMON_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microgpt {

struct ModelConfig {
  int n_embd = 16;
  int n_head = 4;
  int n_layer = 1;
  int block_size = 16;
  int vocab_size = 27;  // distinct characters + BOS

  int head_dim() const { return n_embd / n_head; }
  // Total float32 parameters (4,192 for the reference model with vocab 27).
  int64_t num_parameters() const;

  // OK when every size is positive, n_head divides n_embd and the model fits
  // the limits below; otherwise INVALID_ARGUMENT naming the field.
  absl::Status Validate() const;

  // {"n_embd":16,"n_head":4,"n_layer":1,"block_size":16,"vocab_size":27}
  std::string ToJson() const;
  static absl::StatusOr<ModelConfig> FromJson(absl::string_view json);

  friend bool operator==(const ModelConfig& a, const ModelConfig& b) {
    return a.n_embd == b.n_embd && a.n_head == b.n_head &&
           a.n_layer == b.n_layer && a.block_size == b.block_size &&
           a.vocab_size == b.vocab_size;
  }
  friend bool operator!=(const ModelConfig& a, const ModelConfig& b) {
    return !(a == b);
  }
};

// Upper bounds that keep a single model within a few GiB of memory.
inline constexpr int kMaxEmbd = 4096;
inline constexpr int kMaxLayers = 64;
inline constexpr int kMaxBlockSize = 2048;
inline constexpr int kMaxVocabSize = 1 << 20;
inline constexpr int64_t kMaxParameters = int64_t{1} << 28;  // 1 GiB of floats

}  // namespace microgpt

#endif  // MICROGPT_COMMON_CONFIG_H_
