#pragma once
// Per-element math of the meta networks (docs/metaquant.md §4): the single source of truth for
// the CPU loops (meta_cpu.cpp) and the CUDA kernels (meta.cu).
//
// Every weight element is one row of the meta network's batch. The fused kernels never hold the
// [N, hidden] activations of the coordinate-wise MLPs; the LSTM's state is [N, hidden] by
// definition (it is kept between steps), and its recurrent pre-activation h @ W_hh^T is a GEMM
// the op layer runs chunk by chunk.
#include <cmath>

#include "kernels/base/host_device.h"
#include "kernels/base/float_math.h"

namespace mq::kernels {

enum class MetaAct : int { none, relu, tanh };

template <class T>
MQ_HD inline T meta_exp(T x) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) return expf(x); else return exp(x);
#else
  if constexpr (sizeof(T) == 4) return exp_f32(x); else return std::exp(x);
#endif
}
template <class T>
MQ_HD inline T meta_tanh(T x) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) return tanhf(x); else return tanh(x);
#else
  if constexpr (sizeof(T) == 4) return tanh_f32(x); else return std::tanh(x);
#endif
}
template <class T>
MQ_HD inline T meta_sigmoid(T x) {
  return T(1) / (T(1) + meta_exp(-x));
}

// ---- collapsed linear meta nets (activation none) ----
// FC-Grad: G = s * g_hat (u = g_hat, v = null). MultiFC: G = g_hat * (s * W~) (u = W~, v = g_hat).
template <class T>
MQ_HD inline T meta_scaled_value(T s, T u, T v) {
  return v * (s * u);
}

// ---- one LSTM cell step of one row, gate order i, f, g, o (PyTorch) ----
// Pre-activations: a_k = x * w_ih[k] + b_ih[k] + b_hh[k] + r[k] with r the recurrent part
// (h_prev @ W_hh^T, zero when the state is zero).
template <class T>
struct LstmGates {
  T i, f, g, o, c, h, tc;  // activations, new cell, new hidden, tanh(new cell)
};
template <class T>
MQ_HD inline LstmGates<T> lstm_gates(T ai, T af, T ag, T ao, T c_prev) {
  LstmGates<T> s;
  s.i = meta_sigmoid(ai);
  s.f = meta_sigmoid(af);
  s.g = meta_tanh(ag);
  s.o = meta_sigmoid(ao);
  s.c = s.f * c_prev + s.i * s.g;
  s.tc = meta_tanh(s.c);
  s.h = s.o * s.tc;
  return s;
}
// Gradients of the pre-activations from dL/dh' (the cell's new state is detached, so dL/dc'
// comes from h' only).
template <class T>
MQ_HD inline void lstm_gates_backward(const LstmGates<T>& s, T c_prev, T dh, T& dai, T& daf,
                                      T& dag, T& dao) {
  const T dc = dh * s.o * (T(1) - s.tc * s.tc);
  dao = dh * s.tc * s.o * (T(1) - s.o);
  dai = dc * s.g * s.i * (T(1) - s.i);
  daf = dc * c_prev * s.f * (T(1) - s.f);
  dag = dc * s.i * (T(1) - s.g * s.g);
}

}  // namespace mq::kernels
