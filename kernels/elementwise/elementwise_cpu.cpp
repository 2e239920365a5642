#include "kernels/elementwise/elementwise.h"

#include "kernels/cpu_threads.h"

namespace mq::kernels {
namespace {
// loop(b, e) over [0, n), in chunks over the threads for large n (kernels/cpu_threads.h).
// 16K elements (64 KB of f32 per operand) a chunk: a few hundred chunks for a ResNet activation.
constexpr int64_t kElementwiseChunk = 1 << 14;
template <class Loop>
void parallel_range(int64_t n, Loop&& loop) {
  parallel_chunks(n, kElementwiseChunk, cpu_threads_for(n), loop);
}

// The op is a template argument so each loop is specialized and vectorizes; a runtime switch
// inside the loop would keep it scalar.
template <UnaryOp Op, class T>
void unary_loop(const T* x, T* y, int64_t n) {
  parallel_range(n, [=](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) y[i] = apply_unary(Op, x[i]);
  });
}

template <BinaryOp Op, class T>
void binary_loop(const T* a, const T* b, T* y, int64_t n) {
  parallel_range(n, [=](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) y[i] = apply_binary(Op, a[i], b[i]);
  });
}
}  // namespace

template <class T>
void unary_cpu(UnaryOp op, const T* x, T* y, int64_t n) {
  switch (op) {
    case UnaryOp::neg: return unary_loop<UnaryOp::neg>(x, y, n);
    case UnaryOp::relu: return unary_loop<UnaryOp::relu>(x, y, n);
    case UnaryOp::tanh: return unary_loop<UnaryOp::tanh>(x, y, n);
    case UnaryOp::abs: return unary_loop<UnaryOp::abs>(x, y, n);
    case UnaryOp::sign: return unary_loop<UnaryOp::sign>(x, y, n);
  }
}

template <class T>
void binary_cpu(BinaryOp op, const T* a, const T* b, T* y, int64_t n) {
  switch (op) {
    case BinaryOp::add: return binary_loop<BinaryOp::add>(a, b, y, n);
    case BinaryOp::sub: return binary_loop<BinaryOp::sub>(a, b, y, n);
    case BinaryOp::mul: return binary_loop<BinaryOp::mul>(a, b, y, n);
    case BinaryOp::relu_grad: return binary_loop<BinaryOp::relu_grad>(a, b, y, n);
    case BinaryOp::tanh_grad: return binary_loop<BinaryOp::tanh_grad>(a, b, y, n);
    case BinaryOp::abs_grad: return binary_loop<BinaryOp::abs_grad>(a, b, y, n);
  }
}

template <class T>
void affine_cpu(const T* x, T* y, int64_t n, T alpha, T beta) {
  parallel_range(n, [=](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) y[i] = alpha * x[i] + beta;
  });
}

template <class T>
void axpy_cpu(T alpha, const T* x, T* y, int64_t n) {
  parallel_range(n, [=](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) y[i] += alpha * x[i];
  });
}

template <class T>
void hardtanh_cpu(const T* x, T* y, int64_t n, T lo, T hi) {
  parallel_range(n, [=](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) y[i] = hardtanh_of(x[i], lo, hi);
  });
}

template <class T>
void hardtanh_grad_cpu(const T* g, const T* x, T* gx, int64_t n, T lo, T hi) {
  parallel_range(n, [=](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) gx[i] = hardtanh_grad_of(g[i], x[i], lo, hi);
  });
}

#define MQ_INSTANTIATE(T)                                                 \
  template void unary_cpu<T>(UnaryOp, const T*, T*, int64_t);             \
  template void binary_cpu<T>(BinaryOp, const T*, const T*, T*, int64_t); \
  template void affine_cpu<T>(const T*, T*, int64_t, T, T);               \
  template void axpy_cpu<T>(T, const T*, T*, int64_t);                    \
  template void hardtanh_cpu<T>(const T*, T*, int64_t, T, T);             \
  template void hardtanh_grad_cpu<T>(const T*, const T*, T*, int64_t, T, T);
MQ_INSTANTIATE(float)
MQ_INSTANTIATE(double)
#undef MQ_INSTANTIATE

}  // namespace mq::kernels
