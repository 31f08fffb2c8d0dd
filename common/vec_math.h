// Float helpers shared by the decoding kernels (layers.cc) and the sampler,
// written as plain loops that GCC vectorises at -O3 (AVX2 + FMA with the
// project's -march=haswell) without -ffast-math.
//
// Float addition is not associative, so the compiler may not vectorise a
// plain running sum. Every reduction here keeps kLanes independent partial
// sums instead (lane k takes elements k, k + 8, ...), which maps onto one
// vector register, and combines them in a fixed order at the end, followed by
// the tail. The result depends only on the inputs and n, never on alignment,
// so a given binary always gives the same numbers.
#ifndef MICROGPT_COMMON_VEC_MATH_H_
#define MICROGPT_COMMON_VEC_MATH_H_

#include <cmath>
#include <cstdint>
#include <cstring>

namespace microgpt {

inline constexpr int kLanes = 8;

// n rounded up to a multiple of kLanes.
inline constexpr int RoundUpToLanes(int n) {
  return (n + kLanes - 1) / kLanes * kLanes;
}

// The fixed-order sum of kLanes partial sums.
inline float SumLanes(const float* lanes) {
  return ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) +
         ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
}

// e^x in float, branch-free so that loops over it vectorise (std::exp is a
// library call GCC cannot vectorise without -ffast-math). Cephes' expf:
// x = k ln2 + r with |r| <= ln2 / 2, e^r by a degree-7 polynomial, 2^k put
// into the exponent bits; relative error below 1e-7. Exactly 1 at 0.
// Returns 0 for x < -87 and -inf, so masked logits get weight 0: e^-87 is
// 1.6e-38, just above FLT_MIN, and going lower would produce subnormal
// floats, which cost a microcode assist (~100 cycles) per instruction.
// x above 88 is taken as 88. NaN in, unspecified out: callers pass
// differences to a finite maximum.
//
// The range checks work on the bits: GCC turns a float select next to float
// arithmetic into a branch (it will not speculate an operation that may
// trap), which stops vectorisation, while integer selects become blends.
// For floats of one sign the bits order like the values: upwards as signed
// integers when positive, downwards as unsigned ones when negative.
inline float FastExp(float x) {
  constexpr int32_t kMaxBits = 0x42b00000;    // 88.0f
  constexpr uint32_t kMinBits = 0xc2ae0000u;  // -87.0f
  int32_t xs;
  std::memcpy(&xs, &x, sizeof(xs));
  const int32_t hi = xs < kMaxBits ? xs : kMaxBits;  // negatives unchanged
  const uint32_t xu = static_cast<uint32_t>(hi);
  const uint32_t clamped = xu < kMinBits ? xu : kMinBits;  // positives too:
  // their bits are below every negative float's
  float xc;
  std::memcpy(&xc, &clamped, sizeof(xc));
  // k = round(x / ln2): adding 1.5 * 2^23 leaves no fraction bits.
  const float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  // r = x - k ln2, with ln2 split in two so that k * 0.693359375 is exact.
  const float r = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * (r * r) + r + 1.0f;
  const int32_t two_k_bits = (static_cast<int32_t>(k) + 127) << 23;
  float two_k;
  std::memcpy(&two_k, &two_k_bits, sizeof(two_k));
  const float e = er * two_k;
  uint32_t e_bits;
  std::memcpy(&e_bits, &e, sizeof(e_bits));
  e_bits &= static_cast<uint32_t>(xs) > kMinBits ? 0u : ~0u;
  float out;
  std::memcpy(&out, &e_bits, sizeof(out));
  return out;
}

// Whether any of x[0, n) is NaN.
inline bool AnyNaN(const float* x, int n) {
  int nan = 0;
  for (int i = 0; i < n; ++i) nan |= x[i] != x[i];
  return nan != 0;
}

// The largest of x[0, n), n >= 1. x must hold no NaN.
inline float MaxOf(const float* x, int n) {
  float m = x[0];
  int i = 0;
  if (n >= kLanes) {
    float lanes[kLanes];
    for (int k = 0; k < kLanes; ++k) lanes[k] = x[k];
    for (i = kLanes; i + kLanes <= n; i += kLanes) {
      for (int k = 0; k < kLanes; ++k) {
        lanes[k] = x[i + k] > lanes[k] ? x[i + k] : lanes[k];
      }
    }
    for (int k = 1; k < kLanes; ++k)
      lanes[0] = lanes[k] > lanes[0] ? lanes[k] : lanes[0];
    m = lanes[0];
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// The sum of x[0, n), in kLanes partial sums.
inline float Sum(const float* x, int n) {
  float lanes[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) lanes[k] += x[i + k];
  }
  float sum = SumLanes(lanes);
  for (; i < n; ++i) sum += x[i];
  return sum;
}

// a . b over n elements, in kLanes partial sums.
inline float Dot(const float* a, const float* b, int n) {
  float lanes[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) lanes[k] += a[i + k] * b[i + k];
  }
  float sum = SumLanes(lanes);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// x[i] = e^(x[i] - shift) for i < n; returns their sum (kLanes partial sums).
inline float ExpShiftedInPlace(float* x, float shift, int n) {
  float lanes[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      x[i + k] = FastExp(x[i + k] - shift);
      lanes[k] += x[i + k];
    }
  }
  float sum = SumLanes(lanes);
  for (; i < n; ++i) {
    x[i] = FastExp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

}  // namespace microgpt

#endif  // MICROGPT_COMMON_VEC_MATH_H_
