// The kernels of a microgpt (docs/model.md), each `_forward` next to its
// `_backward`, in the order the model uses them. TrainingGraph chains them
// over a packed batch (the documents' positions back to back, no padding),
// Decoder over one token per sequence or a run of one sequence's consecutive
// tokens (a prefill); sharing them keeps the forwards equal up to float
// summation order.
//
// Shapes use these names:
//   N   rows, one per token: every position of every document in training,
//       the sequences (or a prefill's tokens) in decoding
//   B   documents; T sequence length (block_size at most); V = vocab_size
//   C   n_embd; NH heads of width HD = C / NH; IC, OC in and out features
// Every buffer is row-major and contiguous unless a leading dimension says so.
//
// The linear layers go through OpenBLAS: cblas_sgemm, or cblas_sgemv when a
// single row is multiplied (a direct loop when it is tiny); attention, in
// training and in decoding, is direct loops; exp is vec_math.h's FastExp.
// Nothing here allocates.
//
// Residual adds are fused into the matmul that produces the branch:
// x += branch(x) W^T is matmul_forward(x, ..., /*accumulate=*/true) (sgemm with
// beta 1). Its backward is the identity on the residual stream, so the residual
// gradient buffer flows on unchanged and each branch adds its input gradient
// into it (rmsnorm_backward accumulates).
#ifndef MICROGPT_COMMON_LAYERS_H_
#define MICROGPT_COMMON_LAYERS_H_

namespace microgpt {

inline constexpr float kRmsNormEps = 1e-5f;

// ---------------------------------------------------------------------------
// Token + position embedding.
// out[B*T, C] = wte[tokens[b*T + t]] + wpe[t]
void embedding_forward(float* out, const int* tokens, const float* wte,
                       const float* wpe, int B, int T, int C);
// dwte[tokens[b*T + t]] += dout[b*T + t], dwpe[t] += dout[b*T + t]
// (accumulates: a token may occur many times).
void embedding_backward(float* dwte, float* dwpe, const float* dout,
                        const int* tokens, int B, int T, int C);

// ---------------------------------------------------------------------------
// RMS norm without gain: out[N, C] = x * rstd, rstd[N] = 1 / sqrt(mean(x^2) +
// 1e-5). out may alias inp; rstd may be nullptr when no backward follows.
void rmsnorm_forward(float* out, float* rstd, const float* inp, int N, int C);
// dinp[N, C] += rstd * (dout - out * mean(dout * out)), from the forward's
// output and rstd (the input is not needed). Accumulates.
void rmsnorm_backward(float* dinp, const float* dout, const float* out,
                      const float* rstd, int N, int C);

// ---------------------------------------------------------------------------
// Linear layer without bias, weight W[OC, IC] (out features by in features).
// out[N, OC] = inp[N, IC] W^T, or out += inp W^T when `accumulate` (the
// residual add). One sgemm; when N == 1 one sgemv, or for IC * OC <=
// kSmallMatvec a direct loop (one fixed-order dot product per output).
inline constexpr int kSmallMatvec = 2048;
void matmul_forward(float* out, const float* inp, const float* weight, int N,
                    int IC, int OC, bool accumulate = false);
// dinp[N, IC] = dout[N, OC] W and dweight[OC, IC] = dout^T inp, both
// overwritten (every weight is used once per step). Two sgemms.
void matmul_backward(float* dinp, float* dweight, const float* dout,
                     const float* inp, const float* weight, int N, int IC,
                     int OC);

// ---------------------------------------------------------------------------
// Causal multi-head self-attention over B packed documents: document b is
// rows [offsets[b], offsets[b+1]) of qkv and out, n = offsets[b+1] -
// offsets[b] positions, and attends only within itself. qkv[N, 3C] holds
// q | k | v per row; head h is columns [h*HD, (h+1)*HD) of each third.
// Per document and head, with q, k, v its [n, HD] slices:
//   att = softmax(q k^T / sqrt(HD)) with the causal mask         [n, n]
//   out[offsets[b] + t, h*HD + d] = (att v)[t, d]                out [N, C]
// att holds NH * n * n floats per document, back to back (at most
// B * NH * T * T): the weights of each head, [NH, n, n], or [n, n, NH] for
// the narrow heads done all at once; entries with s > t are not written.
void attention_forward(float* out, float* att, const float* qkv,
                       const int* offsets, int B, int C, int NH);
// dqkv[N, 3C] is overwritten. datt is [NH, T, T] scratch (T >= every n).
//   d(att) = dout v^T, dv = att^T dout,
//   dscores = att * (d(att) - rowsum(d(att) * att)) / sqrt(HD)  (softmax)
//   dq = dscores k, dk = dscores^T q.
void attention_backward(float* dqkv, float* datt, const float* dout,
                        const float* att, const float* qkv, const int* offsets,
                        int B, int C, int NH);

// One query against a sequence's cached keys and values at positions
// 0..L-1: the decoder's attention, one row of attention_forward up to float
// summation order. q[C], out[C]. The cache is channel-major, so that the L
// positions of a channel are contiguous and the loops run over kLanes
// positions at a time: keys_t, values_t [C, stride], position s of channel c
// at c * stride + s, stride a multiple of kLanes (vec_math.h) >= L. Positions
// L up to the next multiple of kLanes are padding and must hold 0 in both.
// scratch[NH * RoundUpToLanes(L)]. Direct loops, no BLAS.
void attention_decode(float* out, float* scratch, const float* q,
                      const float* keys_t, const float* values_t, int L,
                      int stride, int C, int NH);

// ---------------------------------------------------------------------------
// out[n] = max(inp[n], 0); may run in place.
void relu_forward(float* out, const float* inp, int n);
// dinp[n] = dout[n] where out[n] > 0, else 0, from the forward's output; may
// run in place (dinp == dout).
void relu_backward(float* dinp, const float* dout, const float* out, int n);

// ---------------------------------------------------------------------------
// Softmax cross-entropy, one target per row (a packed batch has no padding).
// probs[N, V] = softmax(logits). Returns the SUM over rows of
// -log probs[n, targets[n]].
double crossentropy_forward(float* probs, const float* logits,
                            const int* targets, int N, int V);
// dlogits[N, V] = (probs - onehot(target)) * dloss, where dloss is
// d(loss)/d(each row's cross-entropy), e.g. 1 / N for a mean. dlogits may
// alias probs.
void crossentropy_backward(float* dlogits, const float* probs,
                           const int* targets, float dloss, int N, int V);

// In-place numerically stable softmax of x[n].
void softmax_inplace(float* x, int n);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_LAYERS_H_
