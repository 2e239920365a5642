#include "kernels/elementwise/elementwise.h"

namespace mq::kernels {
namespace {
constexpr int64_t kParallelMin = 1 << 15;  // below this, threading costs more than it saves
}

template <class T>
void unary_cpu(UnaryOp op, const T* x, T* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = apply_unary(op, x[i]);
}

template <class T>
void binary_cpu(BinaryOp op, const T* a, const T* b, T* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = apply_binary(op, a[i], b[i]);
}

template <class T>
void affine_cpu(const T* x, T* y, int64_t n, T alpha, T beta) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i] + beta;
}

template <class T>
void axpy_cpu(T alpha, const T* x, T* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

#define MQ_INSTANTIATE(T)                                              \
  template void unary_cpu<T>(UnaryOp, const T*, T*, int64_t);          \
  template void binary_cpu<T>(BinaryOp, const T*, const T*, T*, int64_t); \
  template void affine_cpu<T>(const T*, T*, int64_t, T, T);            \
  template void axpy_cpu<T>(T, const T*, T*, int64_t);
MQ_INSTANTIATE(float)
MQ_INSTANTIATE(double)
#undef MQ_INSTANTIATE

}  // namespace mq::kernels
