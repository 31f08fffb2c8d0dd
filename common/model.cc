#include "common/model.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "common/rng.h"

namespace microgpt {

void InitializeParameters(uint64_t seed, std::vector<float>& parameters,
                          double std) {
  Rng rng(seed);
  for (float& p : parameters) p = static_cast<float>(std * rng.Normal());
}

Model::Model(const ModelConfig& config, std::vector<float> parameters)
    : config_(config), layout_(config), parameters_(std::move(parameters)) {}

Model Model::Initialize(const ModelConfig& config, uint64_t seed) {
  std::vector<float> parameters(ParameterLayout(config).total_size());
  InitializeParameters(seed, parameters);
  return Model(config, std::move(parameters));
}

absl::StatusOr<Model> Model::FromParameters(const ModelConfig& config,
                                            std::vector<float> parameters) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  const size_t expected = ParameterLayout(config).total_size();
  if (parameters.size() != expected) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "model needs %d parameters, got %d", expected, parameters.size()));
  }
  return Model(config, std::move(parameters));
}

}  // namespace microgpt
