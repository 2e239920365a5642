#pragma once
// Meta-network kernels (docs/metaquant.md §4, §9): raw pointers and sizes, no engine types.
// One call processes the weights of every quantized layer at once (n = all their elements,
// concatenated). Backward functions ADD into their gradient outputs (the op layer zeroes them
// and may call once per chunk of rows); CPU reductions use a fixed row partition, so results do
// not depend on the thread count.
//
// Collapsed linear nets (activation none): G_i = v_i * (s * u_i) with s the product of the
// net's weight matrices (a [1, 1] tensor the op layer computes with autograd); backward gives
// ds = sum_i dG_i * v_i * u_i. FC-Grad: u = g_hat, v = null (ones). MultiFC: u = W~, v = g_hat.
//
// LSTMFC, one step per row: pre-activations a = x w_ih + b_ih + r + b_hh, r = h_prev W_hh^T
// (zero when the state is zero), gates i, f, g, o, c' = f c_prev + i g (c_prev null = zeros),
// h' = o tanh(c'), m = fc_w . h' + fc_b, G = g_hat * m. CUDA: the op layer computes r with a
// GEMM per chunk; the backward recomputes the gates and writes da ([n, 4h]) when non-null so the
// op layer can form dW_hh = da^T h_prev with a GEMM.
#include <cstdint>

#include "kernels/meta/meta_math.h"

namespace mq::kernels {

template <class T>
struct LstmParams {
  const T* w_ih;  // [4h] (weight_ih_l0 is [4h, 1])
  const T* b_ih;  // [4h]
  const T* b_hh;  // [4h]
  const T* fc_w;  // [h]
  const T* fc_b;  // [1]
  int64_t hidden;
};
template <class T>
struct LstmGrads {  // accumulated into
  T* w_ih;  // [4h]
  T* b;     // [4h]: the gradient of b_ih and of b_hh (they are added)
  T* fc_w;  // [h]
  T* fc_b;  // [1]
};

// ---- CPU (f32, f64) ----
template <class T>
void meta_scaled_forward_cpu(const T* s, const T* u, const T* v, int64_t n, T* G);
template <class T>
void meta_scaled_backward_cpu(const T* dG, const T* u, const T* v, int64_t n, T* ds);

// LSTMFC, the whole forward in one call (lstm_cpu.cpp): per chunk of rows the recurrent GEMM
// h_prev W_hh^T (skipped when h_prev is null: zero state) and the cell; writes h', c', G and
// K [n, 4h] = d(pre-activations)/dm, the only activation the backward keeps (it saves
// recomputing the gates, a second [n, h] x [h, 4h] GEMM). The backward forms
// [dW_hh | dw_ih | db] = K^T [dm h_prev | dm x | dm] (dm = dG g_hat) as one GEMM per chunk and
// ADDS into grads and w_hh_grad (null with a zero state).
template <class T>
void meta_lstm_forward_fused_cpu(const LstmParams<T>& p, const T* w_hh, const T* x,
                                 const T* g_hat, const T* h_prev, const T* c_prev, int64_t n,
                                 T* h_new, T* c_new, T* G, T* K);
template <class T>
void meta_lstm_backward_fused_cpu(const LstmParams<T>& p, const T* dG, const T* g_hat,
                                  const T* x, const T* h_prev, const T* h_new, const T* K,
                                  int64_t n, const LstmGrads<T>& grads, T* w_hh_grad);

// ---- CUDA (f32), asynchronous on `stream` (a cudaStream_t) ----
// Backward reductions use a fixed block partition (deterministic); `workspace` is device memory
// of meta_*_workspace_bytes bytes (host functions, defined in meta_cpu.cpp).
constexpr int64_t kMetaCudaMaxBlocks = 1024;
inline int64_t meta_lstm_cuda_rows_per_block(int64_t n) {
  return n < 1 ? 1 : (n + kMetaCudaMaxBlocks - 1) / kMetaCudaMaxBlocks;
}
size_t meta_scaled_workspace_bytes(int64_t n);
void meta_scaled_forward_cuda(const float* s, const float* u, const float* v, int64_t n, float* G,
                              void* stream);
void meta_scaled_backward_cuda(const float* dG, const float* u, const float* v, int64_t n,
                               float* ds, void* workspace, void* stream);
size_t meta_lstm_workspace_bytes(int64_t n, int64_t hidden);
void meta_lstm_forward_cuda(const LstmParams<float>& p, const float* x, const float* g_hat,
                            const float* r, const float* c_prev, int64_t n, float* h_new,
                            float* c_new, float* G, void* stream);
void meta_lstm_backward_cuda(const LstmParams<float>& p, const float* dG, const float* x,
                             const float* g_hat, const float* r, const float* c_prev, int64_t n,
                             float* da, const LstmGrads<float>& grads, void* workspace,
                             void* stream);

}  // namespace mq::kernels
