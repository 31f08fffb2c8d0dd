// Model: a microgpt's config and weights. Immutable once built, so one instance
// is shared read-only by every thread that decodes with it.
#ifndef MICROGPT_COMMON_MODEL_H_
#define MICROGPT_COMMON_MODEL_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/parameters.h"

namespace microgpt {

class Model {
 public:
  // Every parameter drawn from N(0, 0.08^2) in buffer order, from `seed`.
  // The config must be valid.
  static Model Initialize(const ModelConfig& config, uint64_t seed);
  // INVALID_ARGUMENT when the config is invalid or the buffer has the wrong
  // size.
  static absl::StatusOr<Model> FromParameters(const ModelConfig& config,
                                              std::vector<float> parameters);

  const ModelConfig& config() const { return config_; }
  const ParameterLayout& layout() const { return layout_; }
  const std::vector<float>& parameters() const { return parameters_; }
  ParameterViews<const float> weights() const {
    return layout_.Views(parameters_.data());
  }

 private:
  Model(const ModelConfig& config, std::vector<float> parameters);

  ModelConfig config_;
  ParameterLayout layout_;
  std::vector<float> parameters_;
};

// The standard deviation of docs/model.md's initialisation.
inline constexpr double kInitStd = 0.08;

// Writes N(0, std^2) draws into `parameters` (the initialisation of
// docs/model.md with std = kInitStd).
void InitializeParameters(uint64_t seed, std::vector<float>& parameters,
                          double std = kInitStd);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_MODEL_H_
