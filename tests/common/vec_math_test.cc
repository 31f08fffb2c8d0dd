// vec_math.h's float helpers against straightforward double-precision
// versions, across sizes around the 8-lane blocks (0..kLanes and odd tails).
#include "common/vec_math.h"

#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "common/rng.h"
#include "gtest/gtest.h"

namespace microgpt {
namespace {

std::vector<float> Uniform(Rng& rng, int n, double lo, double hi) {
  std::vector<float> x(n);
  for (float& v : x) v = static_cast<float>(lo + (hi - lo) * rng.Uniform());
  return x;
}

TEST(VecMathTest, FastExpRelativeErrorAcrossTheRange) {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 0.0037) {
    const float xf = static_cast<float>(x);
    const double want = std::exp(double{xf});
    worst = std::max(worst, std::fabs(FastExp(xf) - want) / want);
  }
  EXPECT_LT(worst, 2.5e-7);  // 2 ulp
}

TEST(VecMathTest, FastExpEdges) {
  EXPECT_EQ(FastExp(0.0f), 1.0f);
  EXPECT_EQ(FastExp(-0.0f), 1.0f);
  EXPECT_EQ(FastExp(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(FastExp(-1e30f), 0.0f);
  EXPECT_EQ(FastExp(-87.01f), 0.0f);
  // Just above the cut-off: a normal float, never a subnormal.
  EXPECT_GE(FastExp(-86.99f), FLT_MIN);
  EXPECT_NEAR(FastExp(-86.99f) / std::exp(double{-86.99f}), 1.0, 3e-7);
  // Above 88 it saturates at e^88 instead of overflowing.
  EXPECT_EQ(FastExp(1000.0f), FastExp(88.0f));
  EXPECT_TRUE(std::isfinite(FastExp(std::numeric_limits<float>::infinity())));
}

TEST(VecMathTest, FastExpIsMonotonic) {
  float previous = 0.0f;
  for (float x = -87.0f; x <= 88.0f; x += 0.01f) {
    const float e = FastExp(x);
    ASSERT_GE(e, previous) << "x=" << x;
    previous = e;
  }
}

TEST(VecMathTest, RoundUpToLanes) {
  EXPECT_EQ(RoundUpToLanes(0), 0);
  EXPECT_EQ(RoundUpToLanes(1), kLanes);
  EXPECT_EQ(RoundUpToLanes(kLanes), kLanes);
  EXPECT_EQ(RoundUpToLanes(kLanes + 1), 2 * kLanes);
  EXPECT_EQ(RoundUpToLanes(27), 32);
}

TEST(VecMathTest, SumDotMaxMatchReference) {
  Rng rng(1);
  for (int n = 0; n <= 41; ++n) {
    const std::vector<float> a = Uniform(rng, n, -2, 2);
    const std::vector<float> b = Uniform(rng, n, -2, 2);
    double sum = 0, dot = 0, abs_sum = 0, abs_dot = 0;
    for (int i = 0; i < n; ++i) {
      sum += a[i];
      dot += double{a[i]} * b[i];
      abs_sum += std::fabs(a[i]);
      abs_dot += std::fabs(double{a[i]} * b[i]);
    }
    EXPECT_NEAR(Sum(a.data(), n), sum, 1e-6 * abs_sum + 1e-30) << "n=" << n;
    EXPECT_NEAR(Dot(a.data(), b.data(), n), dot, 1e-6 * abs_dot + 1e-30)
        << "n=" << n;
    if (n > 0) {
      EXPECT_EQ(MaxOf(a.data(), n), *std::max_element(a.begin(), a.end()))
          << "n=" << n;
    }
  }
}

TEST(VecMathTest, MaxOfFindsTheMaximumInEveryPosition) {
  for (int n = 1; n <= 20; ++n) {
    for (int at = 0; at < n; ++at) {
      std::vector<float> x(n, -5.0f);
      x[at] = 3.0f;
      EXPECT_EQ(MaxOf(x.data(), n), 3.0f) << "n=" << n << " at=" << at;
    }
  }
}

TEST(VecMathTest, ExpShiftedInPlaceMatchesReference) {
  Rng rng(2);
  for (int n = 1; n <= 41; ++n) {
    std::vector<float> x = Uniform(rng, n, -20, 5);
    const std::vector<float> original = x;
    const float shift = 5.0f;
    const float sum = ExpShiftedInPlace(x.data(), shift, n);
    double want_sum = 0;
    for (int i = 0; i < n; ++i) {
      // The difference is taken in float, as the kernel does.
      const double want = std::exp(double{original[i] - shift});
      EXPECT_NEAR(x[i], want, 3e-7 * want) << "n=" << n << " i=" << i;
      want_sum += want;
    }
    EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum) << "n=" << n;
  }
}

}  // namespace
}  // namespace microgpt
