#pragma once
// Full reductions to one value and their backward broadcasts: raw pointers, no engine types.
#include <cstdint>

namespace mq::kernels {

template <class T> T sum_cpu(const T* x, int64_t n);
template <class T> T max_abs_cpu(const T* x, int64_t n);
// grad_in[i] = grad_out * sign(x[i]) * [|x[i]| == max] / (number of such i)
template <class T>
void max_abs_backward_cpu(const T* x, int64_t n, T max_value, T grad_out, T* grad_in);

// CUDA (f32): results written to device pointers; asynchronous on `stream`.
void sum_cuda(const float* x, int64_t n, float* out, void* stream);
void max_abs_cuda(const float* x, int64_t n, float* out, void* stream);
void max_abs_backward_cuda(const float* x, int64_t n, const float* max_value,
                           const float* grad_out, float* grad_in, void* stream);
// y[i] = scale * (*value) for i < n: backward of sum/mean.
void broadcast_scalar_cuda(const float* value, float scale, float* y, int64_t n, void* stream);

}  // namespace mq::kernels
