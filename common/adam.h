// Adam with bias-corrected moments and a linearly decaying learning rate,
// as docs/model.md's reference optimiser: lr_t = lr * (1 - step / num_steps).
#ifndef MICROGPT_COMMON_ADAM_H_
#define MICROGPT_COMMON_ADAM_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace microgpt {

struct AdamOptions {
  float lr = 0.01f;
  float beta1 = 0.85f;
  float beta2 = 0.99f;
  float eps = 1e-8f;
  int64_t num_steps = 1000;  // the horizon of the linear decay
};

class Adam {
 public:
  Adam(const AdamOptions& options, size_t num_parameters);

  // The learning rate of step `step` (0-based).
  float LearningRate(int64_t step) const;
  // One update of params with grads at step(), then step() grows by one.
  // Returns the learning rate used.
  float Update(float* params, const float* grads);

  int64_t step() const { return step_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  // Restores saved moments (sizes must match) and step count.
  void Restore(std::vector<float> m, std::vector<float> v, int64_t step);

 private:
  AdamOptions options_;
  int64_t step_ = 0;
  std::vector<float> m_, v_;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_ADAM_H_
