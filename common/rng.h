// Rng: xoshiro256** seeded through SplitMix64, with its own uniform, integer
// and normal draws, so a seed gives the same numbers with any compiler and
// standard library. The state is four words, saved in optimizer checkpoints.
#ifndef MICROGPT_COMMON_RNG_H_
#define MICROGPT_COMMON_RNG_H_

#include <array>
#include <cmath>
#include <cstdint>

namespace microgpt {

class Rng {
 public:
  using State = std::array<uint64_t, 4>;

  explicit Rng(uint64_t seed) {
    for (uint64_t& word : state_) word = SplitMix64(seed);
  }
  static Rng FromState(const State& state) {
    Rng rng(0);
    rng.state_ = state;
    return rng;
  }
  const State& state() const { return state_; }

  uint64_t NextU64() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, n), unbiased (rejection sampling). n > 0.
  uint64_t UniformInt(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
      x = NextU64();
    } while (x >= limit);
    return x % n;
  }

  // Standard normal by the Box-Muller transform (one draw per call).
  double Normal() {
    double u1;
    do {
      u1 = Uniform();
    } while (u1 <= 0.0);
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  State state_;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_RNG_H_
