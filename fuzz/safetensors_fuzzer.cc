// libFuzzer target: the safetensors container and the model/optimizer
// checkpoint parsers on arbitrary bytes. Whatever parses must serialise and
// parse back to the same thing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "common/checkpoint.h"
#include "common/safetensors.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microgpt;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)ParseSafetensors(bytes);

  absl::StatusOr<ModelCheckpoint> model = ParseModel(bytes);
  if (model.ok()) {
    const std::string again = SerializeModel(*model);
    absl::StatusOr<ModelCheckpoint> reparsed = ParseModel(again);
    if (!reparsed.ok() ||
        reparsed->parameters.size() != model->parameters.size() ||
        !(reparsed->tokenizer == model->tokenizer)) {
      __builtin_trap();
    }
  }

  static const ParameterLayout* const layout =
      new ParameterLayout(fuzz::TinyConfig());
  absl::StatusOr<OptimizerCheckpoint> state = ParseOptimizer(bytes, *layout);
  if (state.ok()) {
    const std::string again = SerializeOptimizer(*state, *layout);
    absl::StatusOr<OptimizerCheckpoint> reparsed =
        ParseOptimizer(again, *layout);
    if (!reparsed.ok() || reparsed->m.size() != state->m.size() ||
        reparsed->data_order != state->data_order) {
      __builtin_trap();
    }
  }
  return 0;
}
