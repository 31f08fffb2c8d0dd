#include "common/parameters.h"

#include "absl/strings/str_cat.h"

namespace microgpt {

ParameterLayout::ParameterLayout(const ModelConfig& config)
    : num_layers_(config.n_layer) {
  const int c = config.n_embd;
  auto add = [this](std::string name, int rows, int cols) {
    tensors_.push_back({std::move(name), rows, cols, total_size_});
    total_size_ += static_cast<size_t>(rows) * cols;
  };
  add("wte", config.vocab_size, c);
  add("wpe", config.block_size, c);
  add("lm_head", config.vocab_size, c);
  for (int l = 0; l < config.n_layer; ++l) {
    const std::string prefix = absl::StrCat("layer", l, ".");
    add(prefix + "attn_wq", c, c);
    add(prefix + "attn_wk", c, c);
    add(prefix + "attn_wv", c, c);
    add(prefix + "attn_wo", c, c);
    add(prefix + "mlp_fc1", 4 * c, c);
    add(prefix + "mlp_fc2", c, 4 * c);
  }
}

const TensorSpec* ParameterLayout::Find(const std::string& name) const {
  for (const TensorSpec& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

}  // namespace microgpt
