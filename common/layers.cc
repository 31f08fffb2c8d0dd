#include "common/layers.h"

#include <cblas.h>

#include <cmath>
#include <cstring>

#include "common/vec_math.h"

namespace microgpt {

// ---------------------------------------------------------------------------
// Embedding

void embedding_forward(float* out, const int* tokens, const float* wte,
                       const float* wpe, int B, int T, int C) {
  // out is (B*T, C), wte (V, C), wpe (>= T, C)
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      float* o = out + (static_cast<size_t>(b) * T + t) * C;
      const float* te = wte + static_cast<size_t>(tokens[b * T + t]) * C;
      const float* pe = wpe + static_cast<size_t>(t) * C;
      for (int i = 0; i < C; ++i) o[i] = te[i] + pe[i];
    }
  }
}

void embedding_backward(float* dwte, float* dwpe, const float* dout,
                        const int* tokens, int B, int T, int C) {
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      const float* d = dout + (static_cast<size_t>(b) * T + t) * C;
      float* dte = dwte + static_cast<size_t>(tokens[b * T + t]) * C;
      float* dpe = dwpe + static_cast<size_t>(t) * C;
      for (int i = 0; i < C; ++i) {
        dte[i] += d[i];
        dpe[i] += d[i];
      }
    }
  }
}

// ---------------------------------------------------------------------------
// RMS norm

void rmsnorm_forward(float* out, float* rstd, const float* inp, int N, int C) {
  // inp, out are (N, C); rstd is (N)
  for (int n = 0; n < N; ++n) {
    const float* x = inp + static_cast<size_t>(n) * C;
    float* o = out + static_cast<size_t>(n) * C;
    const float r = 1.0f / std::sqrt(Dot(x, x, C) / C + kRmsNormEps);
    for (int i = 0; i < C; ++i) o[i] = x[i] * r;
    if (rstd != nullptr) rstd[n] = r;
  }
}

void rmsnorm_backward(float* dinp, const float* dout, const float* out,
                      const float* rstd, int N, int C) {
  // y = x r with r = (mean(x^2) + eps)^(-1/2) gives
  // dx = r (dy - y mean(dy y)).
  for (int n = 0; n < N; ++n) {
    const float* dy = dout + static_cast<size_t>(n) * C;
    const float* y = out + static_cast<size_t>(n) * C;
    float* dx = dinp + static_cast<size_t>(n) * C;
    const float m = Dot(dy, y, C) / C, r = rstd[n];
    for (int i = 0; i < C; ++i) dx[i] += r * (dy[i] - y[i] * m);
  }
}

// ---------------------------------------------------------------------------
// Matmul

void matmul_forward(float* out, const float* inp, const float* weight, int N,
                    int IC, int OC, bool accumulate) {
  // inp is (N, IC), weight (OC, IC), out (N, OC)
  if (N == 1 && IC * OC <= kSmallMatvec) {
    // One fixed-order dot product per output: for these sizes cblas_sgemv's
    // per-call work (argument checks, scaling y by beta) costs more than the
    // arithmetic (microgpt's 16-wide layers run ~1.2-2x faster this way).
    for (int o = 0; o < OC; ++o) {
      const float d = Dot(weight + static_cast<size_t>(o) * IC, inp, IC);
      out[o] = accumulate ? out[o] + d : d;
    }
    return;
  }
  const float beta = accumulate ? 1.0f : 0.0f;
  if (N == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, IC, 1.0f, weight, IC, inp, 1,
                beta, out, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp,
                IC, weight, IC, beta, out, OC);
  }
}

void matmul_backward(float* dinp, float* dweight, const float* dout,
                     const float* inp, const float* weight, int N, int IC,
                     int OC) {
  // dinp (N, IC) = dout (N, OC) . weight (OC, IC)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout,
              OC, weight, IC, 0.0f, dinp, IC);
  // dweight (OC, IC) = dout^T (OC, N) . inp (N, IC)
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout,
              OC, inp, IC, 0.0f, dweight, IC);
}

// ---------------------------------------------------------------------------
// Attention

void softmax_inplace(float* x, int n) {
  const float inv = 1.0f / ExpShiftedInPlace(x, MaxOf(x, n), n);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

// Attention runs as direct loops, per document and head, over only the
// causal (t, s <= t) pairs. Documents hold ~7 positions and heads 4 to 64
// columns, so these products are far too small for sgemm: its per-call
// overhead (argument checks, packing, the beta pass) cost more than the
// arithmetic, 6 calls per document, head and layer. The loops are compiled
// for the usual head widths (kHD > 0), where every loop over a head's columns
// unrolls into a few vector instructions; kHD = 0 takes HD at run time.
namespace {

// The length of the head-wide dot products. Dot's 8 lanes vectorise as a
// loop; a compile-time length of 16 or more gets fully unrolled first and then
// runs lane by lane in scalar code (GCC 12), so wide heads pass it at run
// time. Narrow heads are best unrolled: a few scalar FMAs.
template <int kHD>
int DotLength(int C, int NH) {
  return kHD > 0 && kHD < 16 ? kHD : C / NH;
}

// out[0, HD) = sum_{j < count} w[j * w_stride] * rows[j * row_stride + i]:
// the head-wide weighted sums of attention. With kHD > 0 the sum runs in a
// local array, which the compiler keeps in vector registers (through out, a
// float* that may alias rows, it would reload and store every term).
template <int kHD>
void WeightedRowSum(float* out, const float* w, size_t w_stride,
                    const float* rows, size_t row_stride, int count, int HD) {
  if constexpr (kHD > 0) {
    float acc[kHD] = {};
    for (int j = 0; j < count; ++j) {
      const float wj = w[j * w_stride];
      const float* r = rows + j * row_stride;
      for (int i = 0; i < kHD; ++i) acc[i] += wj * r[i];
    }
    std::memcpy(out, acc, sizeof(acc));
  } else {
    for (int i = 0; i < HD; ++i) out[i] = 0.0f;
    for (int j = 0; j < count; ++j) {
      const float wj = w[j * w_stride];
      const float* r = rows + j * row_stride;
      for (int i = 0; i < HD; ++i) out[i] += wj * r[i];
    }
  }
}

template <int kHD>
void AttentionForward(float* out, float* att, const float* qkv,
                      const int* offsets, int B, int C, int NH) {
  // qkv is (N, 3C), out (N, C); att holds (NH, n, n) per document
  const int C3 = 3 * C, HD = kHD > 0 ? kHD : C / NH;
  const int dot_n = DotLength<kHD>(C, NH);
  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  float* a = att;
  for (int b = 0; b < B; ++b) {
    const int n = offsets[b + 1] - offsets[b];
    const float* base = qkv + static_cast<size_t>(offsets[b]) * C3;
    float* out_b = out + static_cast<size_t>(offsets[b]) * C;
    for (int h = 0; h < NH; ++h, a += n * n) {
      const float* qh = base + h * HD;
      const float* kh = qh + C;
      const float* vh = qh + 2 * C;
      for (int t = 0; t < n; ++t) {
        // att[t, s] = softmax_s(scale * q_t . k_s), s <= t
        const float* q = qh + static_cast<size_t>(t) * C3;
        float* row = a + t * n;
        for (int s = 0; s <= t; ++s) {
          row[s] = scale * Dot(q, kh + static_cast<size_t>(s) * C3, dot_n);
        }
        softmax_inplace(row, t + 1);
        // out_t = sum_{s <= t} att[t, s] v_s
        WeightedRowSum<kHD>(out_b + static_cast<size_t>(t) * C + h * HD, row, 1,
                            vh, C3, t + 1, HD);
      }
    }
  }
}

template <int kHD>
void AttentionBackward(float* dqkv, float* datt, const float* dout,
                       const float* att, const float* qkv, const int* offsets,
                       int B, int C, int NH) {
  // dout is (N, C), qkv and dqkv (N, 3C); att as in the forward; datt (n, n)
  const int C3 = 3 * C, HD = kHD > 0 ? kHD : C / NH;
  const int dot_n = DotLength<kHD>(C, NH);
  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  const float* a = att;
  for (int b = 0; b < B; ++b) {
    const int n = offsets[b + 1] - offsets[b];
    const size_t row0 = offsets[b];
    for (int h = 0; h < NH; ++h, a += n * n) {
      const float* qh = qkv + row0 * C3 + h * HD;
      const float* kh = qh + C;
      const float* vh = qh + 2 * C;
      float* dqh = dqkv + row0 * C3 + h * HD;
      float* dkh = dqh + C;
      float* dvh = dqh + 2 * C;
      const float* douth = dout + row0 * C + h * HD;
      // By query t: d(att)[t, s] = dout_t . v_s, the softmax backward
      // dscores[t, s] = scale * att (d(att) - sum_s(att d(att))), kept in
      // datt, and dq_t = sum_{s <= t} dscores[t, s] k_s.
      for (int t = 0; t < n; ++t) {
        const float* d = douth + static_cast<size_t>(t) * C;
        const float* ar = a + t * n;
        float* dr = datt + t * n;
        float dot = 0.0f;
        for (int s = 0; s <= t; ++s) {
          dr[s] = Dot(d, vh + static_cast<size_t>(s) * C3, dot_n);
          dot += ar[s] * dr[s];
        }
        for (int s = 0; s <= t; ++s) dr[s] = scale * ar[s] * (dr[s] - dot);
        WeightedRowSum<kHD>(dqh + static_cast<size_t>(t) * C3, dr, 1, kh, C3,
                            t + 1, HD);
      }
      // By key s, over the queries t >= s (column s of datt and att):
      // dk_s = sum_t dscores[t, s] q_t and dv_s = sum_t att[t, s] dout_t.
      // Every element of dqkv is written once, so it needs no zeroing first.
      for (int s = 0; s < n; ++s) {
        const size_t ts = static_cast<size_t>(s) * n + s;  // [t = s, s]
        WeightedRowSum<kHD>(dkh + static_cast<size_t>(s) * C3, datt + ts, n,
                            qh + static_cast<size_t>(s) * C3, C3, n - s, HD);
        WeightedRowSum<kHD>(dvh + static_cast<size_t>(s) * C3, a + ts, n,
                            douth + static_cast<size_t>(s) * C, C, n - s, HD);
      }
    }
  }
}

// Narrow heads (2 heads of 4 or 8, the reference config's 4 heads of 4):
// every head of a row at once. Per head, a row's work is a few scalar
// operations with a branch and a division each (its dot products, softmax and
// sums over s <= t run 4 columns wide); across the kNH heads the same steps
// are kNH-wide, and q_t * k_s, weights times v_s over the row's kNH * kHD
// columns are whole vectors. At 4 heads of 4 the forward takes ~0.55x the CPU
// time of the per-head loops, the backward about the same (train_b: 146-153
// -> 129-130 us per step). The attention weights of a document are kept as
// [t][s][h] (h fastest) here.

// Sum of the kHD products of one head, in column order.
template <int kHD>
inline float HeadSum(const float* p) {
  float d = p[0];
  for (int i = 1; i < kHD; ++i) d += p[i];
  return d;
}

// acc[c] += w[head of c] * x[c] over the kNH * kHD columns of a row.
template <int kNH, int kHD>
inline void AddHeadWeighted(float* acc, const float* w, const float* x) {
  float spread[kNH * kHD];
  for (int h = 0; h < kNH; ++h) {
    for (int i = 0; i < kHD; ++i) spread[h * kHD + i] = w[h];
  }
  for (int c = 0; c < kNH * kHD; ++c) acc[c] += spread[c] * x[c];
}

template <int kNH, int kHD>
void AttentionForwardAllHeads(float* out, float* att, const float* qkv,
                              const int* offsets, int B) {
  constexpr int C = kNH * kHD, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHD));
  float* a = att;
  for (int b = 0; b < B; ++b) {
    const int n = offsets[b + 1] - offsets[b];
    const float* base = qkv + static_cast<size_t>(offsets[b]) * C3;
    float* out_b = out + static_cast<size_t>(offsets[b]) * C;
    for (int t = 0; t < n; ++t) {
      const float* q = base + static_cast<size_t>(t) * C3;
      float* at = a + static_cast<size_t>(t) * n * kNH;  // [s][h]
      // at[s][h] = scale * q_t . k_s over head h's columns, s <= t
      for (int s = 0; s <= t; ++s) {
        const float* k = base + static_cast<size_t>(s) * C3 + C;
        float p[C];
        for (int c = 0; c < C; ++c) p[c] = q[c] * k[c];
        for (int h = 0; h < kNH; ++h) {
          at[s * kNH + h] = scale * HeadSum<kHD>(p + h * kHD);
        }
      }
      // softmax over s, every head at once (what softmax_inplace computes)
      float m[kNH], sum[kNH] = {}, inv[kNH];
      for (int h = 0; h < kNH; ++h) m[h] = at[h];
      for (int s = 1; s <= t; ++s) {
        for (int h = 0; h < kNH; ++h) {
          m[h] = at[s * kNH + h] > m[h] ? at[s * kNH + h] : m[h];
        }
      }
      for (int s = 0; s <= t; ++s) {
        for (int h = 0; h < kNH; ++h) {
          at[s * kNH + h] = FastExp(at[s * kNH + h] - m[h]);
          sum[h] += at[s * kNH + h];
        }
      }
      for (int h = 0; h < kNH; ++h) inv[h] = 1.0f / sum[h];
      for (int s = 0; s <= t; ++s) {
        for (int h = 0; h < kNH; ++h) at[s * kNH + h] *= inv[h];
      }
      // out_t = sum_{s <= t} att[t, s] v_s, head by head
      float acc[C] = {};
      for (int s = 0; s <= t; ++s) {
        AddHeadWeighted<kNH, kHD>(acc, at + s * kNH,
                                  base + static_cast<size_t>(s) * C3 + 2 * C);
      }
      std::memcpy(out_b + static_cast<size_t>(t) * C, acc, sizeof(acc));
    }
    a += static_cast<size_t>(n) * n * kNH;
  }
}

template <int kNH, int kHD>
void AttentionBackwardAllHeads(float* dqkv, float* datt, const float* dout,
                               const float* att, const float* qkv,
                               const int* offsets, int B) {
  constexpr int C = kNH * kHD, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHD));
  const float* a = att;
  for (int b = 0; b < B; ++b) {
    const int n = offsets[b + 1] - offsets[b];
    const size_t row0 = offsets[b];
    const float* base = qkv + row0 * C3;
    float* dbase = dqkv + row0 * C3;
    const float* dout_b = dout + row0 * C;
    // By query t: d(att)[t, s] = dout_t . v_s per head, the softmax backward
    // dscores = scale * att (d(att) - sum_s(att d(att))) into datt ([t][s][h]
    // like att), and dq_t = sum_{s <= t} dscores[t, s] k_s.
    for (int t = 0; t < n; ++t) {
      const float* d = dout_b + static_cast<size_t>(t) * C;
      const float* at = a + static_cast<size_t>(t) * n * kNH;
      float* dt = datt + static_cast<size_t>(t) * n * kNH;
      float dot[kNH] = {};
      for (int s = 0; s <= t; ++s) {
        const float* v = base + static_cast<size_t>(s) * C3 + 2 * C;
        float p[C];
        for (int c = 0; c < C; ++c) p[c] = d[c] * v[c];
        for (int h = 0; h < kNH; ++h) {
          dt[s * kNH + h] = HeadSum<kHD>(p + h * kHD);
          dot[h] += at[s * kNH + h] * dt[s * kNH + h];
        }
      }
      float acc[C] = {};
      for (int s = 0; s <= t; ++s) {
        for (int h = 0; h < kNH; ++h) {
          dt[s * kNH + h] =
              scale * at[s * kNH + h] * (dt[s * kNH + h] - dot[h]);
        }
        AddHeadWeighted<kNH, kHD>(acc, dt + s * kNH,
                                  base + static_cast<size_t>(s) * C3 + C);
      }
      std::memcpy(dbase + static_cast<size_t>(t) * C3, acc, sizeof(acc));
    }
    // By key s, over the queries t >= s: dk_s = sum_t dscores[t, s] q_t and
    // dv_s = sum_t att[t, s] dout_t. Every element of dqkv is written once.
    for (int s = 0; s < n; ++s) {
      float dk[C] = {}, dv[C] = {};
      for (int t = s; t < n; ++t) {
        const size_t ts = (static_cast<size_t>(t) * n + s) * kNH;
        AddHeadWeighted<kNH, kHD>(dk, datt + ts,
                                  base + static_cast<size_t>(t) * C3);
        AddHeadWeighted<kNH, kHD>(dv, a + ts,
                                  dout_b + static_cast<size_t>(t) * C);
      }
      std::memcpy(dbase + static_cast<size_t>(s) * C3 + C, dk, sizeof(dk));
      std::memcpy(dbase + static_cast<size_t>(s) * C3 + 2 * C, dv, sizeof(dv));
    }
    a += static_cast<size_t>(n) * n * kNH;
  }
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv,
                       const int* offsets, int B, int C, int NH) {
  switch (C / NH) {
    case 4:
      if (NH == 2)
        return AttentionForwardAllHeads<2, 4>(out, att, qkv, offsets, B);
      if (NH == 4)
        return AttentionForwardAllHeads<4, 4>(out, att, qkv, offsets, B);
      return AttentionForward<4>(out, att, qkv, offsets, B, C, NH);
    case 8:
      if (NH == 2)
        return AttentionForwardAllHeads<2, 8>(out, att, qkv, offsets, B);
      return AttentionForward<8>(out, att, qkv, offsets, B, C, NH);
    case 16:
      return AttentionForward<16>(out, att, qkv, offsets, B, C, NH);
    case 32:
      return AttentionForward<32>(out, att, qkv, offsets, B, C, NH);
    case 64:
      return AttentionForward<64>(out, att, qkv, offsets, B, C, NH);
    default:
      return AttentionForward<0>(out, att, qkv, offsets, B, C, NH);
  }
}

void attention_backward(float* dqkv, float* datt, const float* dout,
                        const float* att, const float* qkv, const int* offsets,
                        int B, int C, int NH) {
  switch (C / NH) {
    case 4:
      if (NH == 2) {
        return AttentionBackwardAllHeads<2, 4>(dqkv, datt, dout, att, qkv,
                                               offsets, B);
      }
      if (NH == 4) {
        return AttentionBackwardAllHeads<4, 4>(dqkv, datt, dout, att, qkv,
                                               offsets, B);
      }
      return AttentionBackward<4>(dqkv, datt, dout, att, qkv, offsets, B, C,
                                  NH);
    case 8:
      if (NH == 2) {
        return AttentionBackwardAllHeads<2, 8>(dqkv, datt, dout, att, qkv,
                                               offsets, B);
      }
      return AttentionBackward<8>(dqkv, datt, dout, att, qkv, offsets, B, C,
                                  NH);
    case 16:
      return AttentionBackward<16>(dqkv, datt, dout, att, qkv, offsets, B, C,
                                   NH);
    case 32:
      return AttentionBackward<32>(dqkv, datt, dout, att, qkv, offsets, B, C,
                                   NH);
    case 64:
      return AttentionBackward<64>(dqkv, datt, dout, att, qkv, offsets, B, C,
                                   NH);
    default:
      return AttentionBackward<0>(dqkv, datt, dout, att, qkv, offsets, B, C,
                                  NH);
  }
}

void attention_decode(float* out, float* scratch, const float* q,
                      const float* keys_t, const float* values_t, int L,
                      int stride, int C, int NH) {
  // q, out are (C); keys_t, values_t (C, stride); scratch (NH, P)
  const int HD = C / NH, P = RoundUpToLanes(L);
  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  // The padding's score: FastExp gives 0 for it.
  constexpr float kMasked = -1e30f;
  for (int h = 0; h < NH; ++h) {
    // scores[h, s] = scale * q_h . k_s for kLanes positions at a time: a
    // broadcast of scale * q[c] times kLanes contiguous keys of channel c.
    float* scores = scratch + h * P;
    for (int s0 = 0; s0 < P; s0 += kLanes) {
      // The padding positions L..P-1 start at kMasked (their keys are 0), so
      // they get weight 0 and the softmax runs over whole vectors.
      float acc[kLanes];
      for (int j = 0; j < kLanes; ++j) acc[j] = s0 + j < L ? 0.0f : kMasked;
      for (int c = h * HD; c < (h + 1) * HD; ++c) {
        const float qc = scale * q[c];
        const float* k = keys_t + static_cast<size_t>(c) * stride + s0;
        for (int j = 0; j < kLanes; ++j) acc[j] += qc * k[j];
      }
      for (int j = 0; j < kLanes; ++j) scores[s0 + j] = acc[j];
    }
  }
  // The softmax of each head, with the exps of every head in one loop:
  // independent, so the core overlaps them, where a head's few exps alone
  // would wait on their latency. The normalisation is applied to out.
  for (int h = 0; h < NH; ++h) {
    float* scores = scratch + h * P;
    const float max_score = MaxOf(scores, P);
    for (int s = 0; s < P; ++s) scores[s] -= max_score;
  }
  for (int i = 0; i < NH * P; ++i) scratch[i] = FastExp(scratch[i]);
  // out[c] = sum_s att[h, s] v_s[c] for c in head h, one channel at a time.
  // The padding's weights are 0 and its values 0 too (never inf or NaN).
  for (int h = 0; h < NH; ++h) {
    const float* weights = scratch + h * P;
    const float inv_sum = 1.0f / Sum(weights, P);
    for (int c = h * HD; c < (h + 1) * HD; ++c) {
      out[c] =
          inv_sum * Dot(weights, values_t + static_cast<size_t>(c) * stride, P);
    }
  }
}

// ---------------------------------------------------------------------------
// ReLU

void relu_forward(float* out, const float* inp, int n) {
  for (int i = 0; i < n; ++i) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_backward(float* dinp, const float* dout, const float* out, int n) {
  for (int i = 0; i < n; ++i) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

// ---------------------------------------------------------------------------
// Cross-entropy

double crossentropy_forward(float* probs, const float* logits,
                            const int* targets, int N, int V) {
  // logits, probs are (N, V); targets (N)
  double loss = 0.0;
  for (int n = 0; n < N; ++n) {
    const float* l = logits + static_cast<size_t>(n) * V;
    float* p = probs + static_cast<size_t>(n) * V;
    const float maxv = MaxOf(l, V);
    std::memcpy(p, l, sizeof(float) * V);
    const float sum = ExpShiftedInPlace(p, maxv, V);
    const float inv = 1.0f / sum;
    for (int i = 0; i < V; ++i) p[i] *= inv;
    // -log softmax[target] = log(sum) - (l[target] - max)
    loss += static_cast<double>(std::log(sum)) -
            static_cast<double>(l[targets[n]] - maxv);
  }
  return loss;
}

void crossentropy_backward(float* dlogits, const float* probs,
                           const int* targets, float dloss, int N, int V) {
  for (int n = 0; n < N; ++n) {
    const float* p = probs + static_cast<size_t>(n) * V;
    float* d = dlogits + static_cast<size_t>(n) * V;
    for (int i = 0; i < V; ++i) d[i] = p[i] * dloss;
    d[targets[n]] -= dloss;
  }
}

}  // namespace microgpt
