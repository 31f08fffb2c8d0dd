// The parameter table: every named tensor of docs/model.md cut out of one
// contiguous float buffer, in the order wte, wpe, lm_head, then per layer
// attn_wq, attn_wk, attn_wv, attn_wo, mlp_fc1, mlp_fc2. Adam, zeroing and
// checkpoint I/O are then single loops over the buffer, and attn_wq|wk|wv form
// one [3C, C] matrix.
#ifndef MICROGPT_COMMON_PARAMETERS_H_
#define MICROGPT_COMMON_PARAMETERS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"

namespace microgpt {

struct TensorSpec {
  std::string name;  // e.g. "layer0.attn_wq"
  int rows;          // out features
  int cols;          // in features
  size_t offset;     // in floats, into the parameter buffer
  size_t size() const { return static_cast<size_t>(rows) * cols; }
};

// Named views into a parameter-shaped buffer (weights, gradients, Adam
// moments). T is float or const float. Shapes are [rows, cols] row-major;
// C = n_embd.
template <typename T>
struct ParameterViews {
  struct Layer {
    T* attn_wqkv;  // [3C, C]: attn_wq, attn_wk, attn_wv stacked
    T* attn_wo;    // [C, C]
    T* mlp_fc1;    // [4C, C]
    T* mlp_fc2;    // [C, 4C]
  };
  T* wte;      // [V, C]
  T* wpe;      // [block_size, C]
  T* lm_head;  // [V, C]
  std::vector<Layer> layers;
};

class ParameterLayout {
 public:
  explicit ParameterLayout(const ModelConfig& config);

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  size_t total_size() const { return total_size_; }
  // nullptr when there is no tensor of that name.
  const TensorSpec* Find(const std::string& name) const;

  template <typename T>
  ParameterViews<T> Views(T* base) const {
    ParameterViews<T> v;
    v.wte = base + tensors_[0].offset;
    v.wpe = base + tensors_[1].offset;
    v.lm_head = base + tensors_[2].offset;
    for (int l = 0; l < num_layers_; ++l) {
      const TensorSpec* t = &tensors_[3 + 6 * l];
      v.layers.push_back({base + t[0].offset, base + t[3].offset,
                          base + t[4].offset, base + t[5].offset});
    }
    return v;
  }

 private:
  int num_layers_;
  std::vector<TensorSpec> tensors_;
  size_t total_size_ = 0;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_PARAMETERS_H_
