#pragma once
// Elementwise kernel launchers: raw pointers and sizes, no engine types.
#include <cstdint>

#include "kernels/elementwise/elementwise_math.h"

namespace mq::kernels {

template <class T> void unary_cpu(UnaryOp op, const T* x, T* y, int64_t n);
template <class T> void binary_cpu(BinaryOp op, const T* a, const T* b, T* y, int64_t n);
// y = alpha * x + beta (scalar ops)
template <class T> void affine_cpu(const T* x, T* y, int64_t n, T alpha, T beta);
// y += alpha * x
template <class T> void axpy_cpu(T alpha, const T* x, T* y, int64_t n);
// y = hardtanh(x, lo, hi); gx = hardtanh_grad(g, x, lo, hi) (elementwise_math.h)
template <class T> void hardtanh_cpu(const T* x, T* y, int64_t n, T lo, T hi);
template <class T> void hardtanh_grad_cpu(const T* g, const T* x, T* gx, int64_t n, T lo, T hi);

// CUDA versions (float only), asynchronous on `stream` (a cudaStream_t).
void unary_cuda(UnaryOp op, const float* x, float* y, int64_t n, void* stream);
void binary_cuda(BinaryOp op, const float* a, const float* b, float* y, int64_t n, void* stream);
void affine_cuda(const float* x, float* y, int64_t n, float alpha, float beta, void* stream);
void axpy_cuda(float alpha, const float* x, float* y, int64_t n, void* stream);
void hardtanh_cuda(const float* x, float* y, int64_t n, float lo, float hi, void* stream);
void hardtanh_grad_cuda(const float* g, const float* x, float* gx, int64_t n, float lo, float hi,
                        void* stream);

}  // namespace mq::kernels
