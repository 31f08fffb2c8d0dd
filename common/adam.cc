#include "common/adam.h"

#include <cmath>
#include <utility>

namespace microgpt {

Adam::Adam(const AdamOptions& options, size_t num_parameters)
    : options_(options), m_(num_parameters, 0.0f), v_(num_parameters, 0.0f) {}

float Adam::LearningRate(int64_t step) const {
  const int64_t warmup = options_.warmup_steps;
  if (step < warmup) {
    return options_.lr * static_cast<float>(step + 1) /
           static_cast<float>(warmup + 1);
  }
  // The fraction of the decay done, in [0, 1): 0 at the first step after the
  // warmup (with none: exactly the reference's step / num_steps).
  const float done = static_cast<float>(step - warmup) /
                     static_cast<float>(options_.num_steps - warmup);
  switch (options_.schedule) {
    case LearningRateSchedule::kLinear:
      return options_.lr * (1.0f - done);
    case LearningRateSchedule::kCosine: {
      const float coefficient =
          0.5f * (1.0f + std::cos(static_cast<float>(M_PI) * done));
      return options_.min_lr + coefficient * (options_.lr - options_.min_lr);
    }
  }
  return options_.lr;
}

float Adam::Update(float* params, const float* grads) {
  const float lr = LearningRate(step_);
  const float b1 = options_.beta1, b2 = options_.beta2, eps = options_.eps;
  // Bias corrections folded into two scalars: p -= lr * m_hat / (sqrt(v_hat) +
  // eps).
  const float m_scale =
      1.0f / (1.0f - std::pow(b1, static_cast<float>(step_ + 1)));
  const float v_scale =
      1.0f / (1.0f - std::pow(b2, static_cast<float>(step_ + 1)));
  float* m = m_.data();
  float* v = v_.data();
  const size_t n = m_.size();
  for (size_t i = 0; i < n; ++i) {
    const float g = grads[i];
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    params[i] -= lr * (m[i] * m_scale) / (std::sqrt(v[i] * v_scale) + eps);
  }
  ++step_;
  return lr;
}

void Adam::Restore(std::vector<float> m, std::vector<float> v, int64_t step) {
  m_ = std::move(m);
  v_ = std::move(v);
  step_ = step;
}

}  // namespace microgpt
