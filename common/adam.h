// Adam with bias-corrected moments and a scheduled learning rate. The
// default is docs/model.md's reference optimiser, a linear decay:
// lr_t = lr * (1 - step / num_steps). Optionally (nanoGPT's options) a linear
// warmup over the first warmup_steps steps, then the linear decay or half a
// cosine from lr down to min_lr over the steps left.
#ifndef MICROGPT_COMMON_ADAM_H_
#define MICROGPT_COMMON_ADAM_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace microgpt {

enum class LearningRateSchedule { kLinear, kCosine };

struct AdamOptions {
  float lr = 0.01f;
  float beta1 = 0.85f;
  float beta2 = 0.99f;
  float eps = 1e-8f;
  int64_t num_steps = 1000;  // the horizon of the decay
  LearningRateSchedule schedule = LearningRateSchedule::kLinear;
  // Steps 0 .. warmup_steps - 1 use lr * (step + 1) / (warmup_steps + 1);
  // < num_steps.
  int64_t warmup_steps = 0;
  float min_lr = 0.0f;  // kCosine's floor, in [0, lr]
};

class Adam {
 public:
  Adam(const AdamOptions& options, size_t num_parameters);

  // The learning rate of step `step` (0-based), in [0, lr].
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
