// The decoder's kernels in layers.h against straightforward double-precision
// versions: attention_decode over the channel-major cache (head widths 1 to
// 32, odd lengths, padding), matmul_forward's single-row path on both sides
// of kSmallMatvec, and softmax_inplace.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/layers.h"
#include "common/rng.h"
#include "common/vec_math.h"
#include "gtest/gtest.h"

namespace microgpt {
namespace {

std::vector<float> Random(Rng& rng, size_t n, double scale) {
  std::vector<float> x(n);
  for (float& v : x) v = static_cast<float>(scale * rng.Normal());
  return x;
}

// softmax(q_h k_s / sqrt(HD)) v_s per head, keys and values row-major [L, C].
std::vector<double> RefAttention(const std::vector<float>& q,
                                 const std::vector<float>& keys,
                                 const std::vector<float>& values, int L, int C,
                                 int NH) {
  const int HD = C / NH;
  std::vector<double> out(C);
  for (int h = 0; h < NH; ++h) {
    std::vector<double> w(L);
    double m = -1e300, sum = 0;
    for (int s = 0; s < L; ++s) {
      double d = 0;
      for (int i = 0; i < HD; ++i) {
        d += double{q[h * HD + i]} * keys[s * C + h * HD + i];
      }
      w[s] = d / std::sqrt(static_cast<double>(HD));
      m = std::max(m, w[s]);
    }
    for (double& v : w) sum += (v = std::exp(v - m));
    for (int i = 0; i < HD; ++i) {
      double o = 0;
      for (int s = 0; s < L; ++s) o += w[s] / sum * values[s * C + h * HD + i];
      out[h * HD + i] = o;
    }
  }
  return out;
}

struct AttentionShape {
  int C, NH;
};

TEST(DecodeKernelsTest, AttentionDecodeMatchesReference) {
  Rng rng(1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const AttentionShape& shape :
       {AttentionShape{16, 4}, AttentionShape{32, 4}, AttentionShape{128, 4},
        AttentionShape{12, 3}, AttentionShape{20, 5}, AttentionShape{8, 8},
        AttentionShape{8, 1}, AttentionShape{64, 2}}) {
    const int C = shape.C, NH = shape.NH;
    for (int T : {1, 5, 8, 16, 23, 32}) {
      // A stride past the padding: the kernel must not read there (NaN).
      const int stride = RoundUpToLanes(T) + kLanes;
      for (int L = 1; L <= T; ++L) {
        for (double scale : {1.0, 4.0}) {  // 4: peaked softmaxes
          const std::vector<float> q = Random(rng, C, scale);
          const std::vector<float> keys = Random(rng, L * C, 1.0);
          const std::vector<float> values = Random(rng, L * C, 1.0);
          std::vector<float> keys_t(C * stride, nan), values_t(C * stride, nan);
          for (int c = 0; c < C; ++c) {
            for (int s = 0; s < RoundUpToLanes(L); ++s) {
              keys_t[c * stride + s] = s < L ? keys[s * C + c] : 0.0f;
              values_t[c * stride + s] = s < L ? values[s * C + c] : 0.0f;
            }
          }
          std::vector<float> out(C, nan), scratch(NH * RoundUpToLanes(L), nan);
          attention_decode(out.data(), scratch.data(), q.data(), keys_t.data(),
                           values_t.data(), L, stride, C, NH);
          const std::vector<double> want =
              RefAttention(q, keys, values, L, C, NH);
          for (int c = 0; c < C; ++c) {
            ASSERT_NEAR(out[c], want[c], 2e-5)
                << "C=" << C << " NH=" << NH << " L=" << L << " c=" << c
                << " scale=" << scale;
          }
        }
      }
    }
  }
}

TEST(DecodeKernelsTest, AttentionDecodeOfOnePositionIsItsValue) {
  const int C = 16, NH = 4, stride = kLanes;
  std::vector<float> q(C, 1.0f), keys_t(C * stride, 0.0f),
      values_t(C * stride, 0.0f), out(C), scratch(NH * kLanes);
  for (int c = 0; c < C; ++c) {
    keys_t[c * stride] = 0.5f * c;
    values_t[c * stride] = 1.0f + c;
  }
  attention_decode(out.data(), scratch.data(), q.data(), keys_t.data(),
                   values_t.data(), 1, stride, C, NH);
  for (int c = 0; c < C; ++c) EXPECT_FLOAT_EQ(out[c], 1.0f + c);
}

TEST(DecodeKernelsTest, MatmulForwardSingleRowMatchesReference) {
  Rng rng(2);
  // Both sides of kSmallMatvec (direct loop, then sgemv), odd sizes.
  for (const auto& [IC, OC] :
       {std::pair{1, 1}, std::pair{3, 5}, std::pair{7, 9}, std::pair{16, 16},
        std::pair{16, 27}, std::pair{16, 48}, std::pair{17, 33},
        std::pair{64, 16}, std::pair{16, 128}, std::pair{45, 45},
        std::pair{64, 64}, std::pair{128, 384}}) {
    for (bool accumulate : {false, true}) {
      const std::vector<float> w = Random(rng, IC * OC, 1.0);
      const std::vector<float> x = Random(rng, IC, 1.0);
      std::vector<float> out = Random(rng, OC, 1.0);
      const std::vector<float> before = out;
      matmul_forward(out.data(), x.data(), w.data(), 1, IC, OC, accumulate);
      for (int o = 0; o < OC; ++o) {
        double want = accumulate ? before[o] : 0.0;
        double magnitude = std::fabs(want);
        for (int i = 0; i < IC; ++i) {
          want += double{w[o * IC + i]} * x[i];
          magnitude += std::fabs(double{w[o * IC + i]} * x[i]);
        }
        ASSERT_NEAR(out[o], want, 1e-6 * magnitude + 1e-7)
            << "IC=" << IC << " OC=" << OC << " accumulate=" << accumulate
            << " small=" << (IC * OC <= kSmallMatvec);
      }
    }
  }
}

TEST(DecodeKernelsTest, SoftmaxInplaceMatchesReference) {
  Rng rng(3);
  for (int n = 1; n <= 40; ++n) {
    for (double scale : {0.1, 3.0, 30.0}) {
      std::vector<float> x = Random(rng, n, scale);
      if (n > 2) x[n / 2] = -1e30f;  // a masked entry
      const std::vector<float> original = x;
      softmax_inplace(x.data(), n);
      // Differences to the maximum are taken in float, as the kernel does.
      const float m = *std::max_element(original.begin(), original.end());
      double sum = 0;
      for (float v : original) sum += std::exp(double{v - m});
      double total = 0;
      for (int i = 0; i < n; ++i) {
        const double want = std::exp(double{original[i] - m}) / sum;
        ASSERT_NEAR(x[i], want, 1e-6 * want + 1e-7)
            << "n=" << n << " i=" << i << " scale=" << scale;
        total += x[i];
      }
      EXPECT_NEAR(total, 1.0, 1e-5);
      if (n > 2) {
        EXPECT_EQ(x[n / 2], 0.0f);
      }
    }
  }
}

}  // namespace
}  // namespace microgpt
