// Shared by the libFuzzer targets: a tiny model configuration whose
// checkpoints stay a few KB, so seeds are small and parsing is fast.
#ifndef MICROGPT_FUZZ_FUZZ_UTIL_H_
#define MICROGPT_FUZZ_FUZZ_UTIL_H_

#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "common/config.h"

namespace microgpt {
namespace fuzz {

inline ModelConfig TinyConfig() {
  ModelConfig config;
  config.n_embd = 8;
  config.n_head = 2;
  config.n_layer = 1;
  config.block_size = 8;
  config.vocab_size = 4;  // "abc" + BOS
  return config;
}

inline ModelCheckpoint TinyCheckpoint() {
  const ModelConfig config = TinyConfig();
  const std::vector<std::string> docs = {"abc", "cab"};
  const ParameterLayout layout(config);
  return ModelCheckpoint{config, Tokenizer::FromDocuments(docs),
                         std::vector<float>(layout.total_size(), 0.25f), 3,
                         1.5};
}

}  // namespace fuzz
}  // namespace microgpt

#endif  // MICROGPT_FUZZ_FUZZ_UTIL_H_
