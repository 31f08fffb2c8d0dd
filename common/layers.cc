#include "common/layers.h"

#include <cblas.h>

#include <cmath>
#include <cstring>

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
    float ss = 0.0f;
    for (int i = 0; i < C; ++i) ss += x[i] * x[i];
    const float r = 1.0f / std::sqrt(ss / C + kRmsNormEps);
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
    float dot = 0.0f;
    for (int i = 0; i < C; ++i) dot += dy[i] * y[i];
    const float m = dot / C, r = rstd[n];
    for (int i = 0; i < C; ++i) dx[i] += r * (dy[i] - y[i] * m);
  }
}

// ---------------------------------------------------------------------------
// Matmul

void matmul_forward(float* out, const float* inp, const float* weight, int N,
                    int IC, int OC, bool accumulate) {
  // inp is (N, IC), weight (OC, IC), out (N, OC)
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
  float maxv = x[0];
  for (int i = 1; i < n; ++i) maxv = x[i] > maxv ? x[i] : maxv;
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - maxv);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void attention_forward(float* out, float* att, const float* qkv, int B, int T,
                       int C, int NH) {
  // qkv is (B, T, 3C), att (B, NH, T, T), out (B, T, C)
  const int C3 = 3 * C, HD = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < NH; ++h) {
      const float* q = qkv + static_cast<size_t>(b) * T * C3 + h * HD;
      const float* k = q + C;
      const float* v = q + 2 * C;
      float* a = att + (static_cast<size_t>(b) * NH + h) * T * T;
      // scores (T, T) = scale * q (T, HD) . k^T (HD, T)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, scale, q,
                  C3, k, C3, 0.0f, a, T);
      // causal softmax: row t sees s <= t; zeros above the diagonal
      for (int t = 0; t < T; ++t) {
        float* row = a + static_cast<size_t>(t) * T;
        softmax_inplace(row, t + 1);
        for (int s = t + 1; s < T; ++s) row[s] = 0.0f;
      }
      // out (T, HD) = att (T, T) . v (T, HD)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, 1.0f, a,
                  T, v, C3, 0.0f, out + static_cast<size_t>(b) * T * C + h * HD,
                  C);
    }
  }
}

void attention_backward(float* dqkv, float* datt, const float* dout,
                        const float* att, const float* qkv, int B, int T, int C,
                        int NH) {
  // dout is (B, T, C), att (B, NH, T, T), qkv and dqkv (B, T, 3C), datt (T, T)
  const int C3 = 3 * C, HD = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < NH; ++h) {
      const size_t row0 = static_cast<size_t>(b) * T;
      const float* q = qkv + row0 * C3 + h * HD;
      const float* k = q + C;
      const float* v = q + 2 * C;
      float* dq = dqkv + row0 * C3 + h * HD;
      float* dk = dq + C;
      float* dv = dq + 2 * C;
      const float* a = att + (static_cast<size_t>(b) * NH + h) * T * T;
      const float* d = dout + row0 * C + h * HD;
      // datt (T, T) = dout (T, HD) . v^T (HD, T)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, 1.0f, d, C,
                  v, C3, 0.0f, datt, T);
      // dv (T, HD) = att^T (T, T) . dout (T, HD)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, 1.0f, a, T,
                  d, C, 0.0f, dv, C3);
      // softmax backward, in place: dscores = scale * a * (datt - sum(a datt))
      for (int t = 0; t < T; ++t) {
        const float* ar = a + static_cast<size_t>(t) * T;
        float* dr = datt + static_cast<size_t>(t) * T;
        float dot = 0.0f;
        for (int s = 0; s <= t; ++s) dot += ar[s] * dr[s];
        for (int s = 0; s <= t; ++s) dr[s] = scale * ar[s] * (dr[s] - dot);
        for (int s = t + 1; s < T; ++s) dr[s] = 0.0f;
      }
      // dq (T, HD) = dscores (T, T) . k (T, HD)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, 1.0f,
                  datt, T, k, C3, 0.0f, dq, C3);
      // dk (T, HD) = dscores^T (T, T) . q (T, HD)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, 1.0f, datt,
                  T, q, C3, 0.0f, dk, C3);
    }
  }
}

void attention_decode(float* out, float* scores, const float* q,
                      const float* keys, const float* values, int L, int C,
                      int NH) {
  // q, out are (C); keys, values (L, C); scores (L)
  const int HD = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  for (int h = 0; h < NH; ++h) {
    // scores (L) = scale * k (L, HD) . q (HD)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, L, HD, scale, keys + h * HD, C,
                q + h * HD, 1, 0.0f, scores, 1);
    softmax_inplace(scores, L);
    // out (HD) = v^T (HD, L) . scores (L)
    cblas_sgemv(CblasRowMajor, CblasTrans, L, HD, 1.0f, values + h * HD, C,
                scores, 1, 0.0f, out + h * HD, 1);
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
    if (targets[n] < 0) {
      std::memset(p, 0, sizeof(float) * V);
      continue;
    }
    float maxv = l[0];
    for (int i = 1; i < V; ++i) maxv = l[i] > maxv ? l[i] : maxv;
    float sum = 0.0f;
    for (int i = 0; i < V; ++i) {
      p[i] = std::exp(l[i] - maxv);
      sum += p[i];
    }
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
    if (targets[n] < 0) {
      std::memset(d, 0, sizeof(float) * V);
      continue;
    }
    for (int i = 0; i < V; ++i) d[i] = p[i] * dloss;
    d[targets[n]] -= dloss;
  }
}

}  // namespace microgpt
