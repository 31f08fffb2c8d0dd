#include "common/config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace microgpt {

int64_t ModelConfig::num_parameters() const {
  const int64_t c = n_embd;
  const int64_t per_layer = 4 * c * c + 2 * 4 * c * c;
  return int64_t{vocab_size} * c * 2 + int64_t{block_size} * c +
         int64_t{n_layer} * per_layer;
}

absl::Status ModelConfig::Validate() const {
  auto check = [](const char* name, int value, int max) -> absl::Status {
    if (value < 1 || value > max) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s must be in [1, %d], got %d", name, max, value));
    }
    return absl::OkStatus();
  };
  for (const absl::Status& s :
       {check("n_embd", n_embd, kMaxEmbd), check("n_head", n_head, kMaxEmbd),
        check("n_layer", n_layer, kMaxLayers),
        check("block_size", block_size, kMaxBlockSize),
        check("vocab_size", vocab_size, kMaxVocabSize)}) {
    if (!s.ok()) return s;
  }
  if (vocab_size < 2) {
    return absl::InvalidArgumentError(
        "vocab_size must be at least 2 (one character and BOS)");
  }
  if (n_embd % n_head != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "n_head (%d) must divide n_embd (%d)", n_head, n_embd));
  }
  if (num_parameters() > kMaxParameters) {
    return absl::InvalidArgumentError(
        absl::StrFormat("model has %d parameters, more than the limit of %d",
                        num_parameters(), kMaxParameters));
  }
  return absl::OkStatus();
}

std::string ModelConfig::ToJson() const {
  return absl::StrFormat(
      R"({"n_embd":%d,"n_head":%d,"n_layer":%d,"block_size":%d,"vocab_size":%d})",
      n_embd, n_head, n_layer, block_size, vocab_size);
}

absl::StatusOr<ModelConfig> ModelConfig::FromJson(absl::string_view json) {
  const nlohmann::json j =
      nlohmann::json::parse(json.begin(), json.end(), nullptr,
                            /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return absl::InvalidArgumentError("model config is not a JSON object");
  }
  ModelConfig config;
  for (auto [name, field] :
       {std::pair{"n_embd", &config.n_embd}, std::pair{"n_head", &config.n_head},
        std::pair{"n_layer", &config.n_layer},
        std::pair{"block_size", &config.block_size},
        std::pair{"vocab_size", &config.vocab_size}}) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config needs an integer \"", name, "\""));
    }
    const int64_t value = it->get<int64_t>();
    if (value < 1 || value > kMaxVocabSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config \"", name, "\" is out of range: ", value));
    }
    *field = static_cast<int>(value);
  }
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  return config;
}

}  // namespace microgpt
