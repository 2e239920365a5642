#pragma once
// Per-element math of the engine's elementwise ops and their gradients; the single source of
// truth for the CPU loops (elementwise_cpu.cpp) and the CUDA kernels (elementwise.cu).
#include <cmath>

#include "kernels/base/host_device.h"

namespace mq::kernels {

enum class UnaryOp { neg, relu, tanh, abs, sign };
// a op b; the *_grad ops take (upstream gradient, saved forward value).
enum class BinaryOp { add, sub, mul, relu_grad, tanh_grad, abs_grad };

template <class T>
MQ_HD inline T sign_of(T x) {
  return static_cast<T>((x > T(0)) - (x < T(0)));
}

template <class T>
MQ_HD inline T apply_unary(UnaryOp op, T x) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::relu: return x > T(0) ? x : T(0);
    case UnaryOp::tanh: return std::tanh(x);
    case UnaryOp::abs: return x < T(0) ? -x : x;
    case UnaryOp::sign: return sign_of(x);
  }
  return x;
}

template <class T>
MQ_HD inline T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::relu_grad: return b > T(0) ? a : T(0);     // b = forward output (or input)
    case BinaryOp::tanh_grad: return a * (T(1) - b * b);      // b = forward output
    case BinaryOp::abs_grad: return a * sign_of(b);           // b = forward input
  }
  return a;
}

// Hardtanh (ReLU6 = hardtanh(x, 0, 6)): x clamped to [lo, hi]; a NaN stays NaN. Its gradient,
// as PyTorch's hardtanh_backward: passes where lo < x < hi, zero at and beyond the bounds.
template <class T>
MQ_HD_INLINE T hardtanh_of(T x, T lo, T hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}
template <class T>
MQ_HD_INLINE T hardtanh_grad_of(T g, T x, T lo, T hi) {
  return x > lo && x < hi ? g : T(0);
}

}  // namespace mq::kernels
