#pragma once
// Weight-quantizer launchers: raw pointers and sizes, no engine types.
//
// A weight of n elements is viewed as `channels` contiguous slices of n / channels elements
// (its output channels). dorefa, bwn and ternary are per tensor (channels must be 1); bwn_f has
// one scale per slice. `scale` has `channels` elements: dorefa m = max|tanh W|, bwn/bwn_f alpha =
// mean|W| (of the slice), ternary a (see quantize_math.h).
//
// forward: one reduction pass (two for ternary, whose second reduction depends on the first)
// and one elementwise pass that writes W~ and W^ together. W~ = W for bwn, bwn_f and ternary:
// pass w_tilde = nullptr to skip writing that copy (the op does). `bits` is the table's
// kernel bits (quantizer_table.h): for dorefa the requested 1..kMaxDorefaBits, which selects a
// compile-time instantiation (check_quantize_args throws mq::Error otherwise).
//
// backward: the STE rule of docs/metaquant.md §3, g_w from (w, g_hat, scale of the forward).
// calibration: dW^/dW as the STE sees it (dorefa (1 - tanh^2 W) / m with m from this w; 1 else).
#include <cstddef>
#include <cstdint>

#include "kernels/quantize/quantize_math.h"

namespace mq::kernels {

// Throws mq::Error when bits or channels do not fit the quantizer's row of the table (n >= 1,
// channels >= 1, n % channels == 0, channels == 1 unless per channel, the kernel bits).
void check_quantize_args(Quantizer q, int bits, int64_t n, int64_t channels);

template <class T>
void quantize_forward_cpu(Quantizer q, int bits, const T* w, int64_t n, int64_t channels,
                          T* w_tilde, T* w_hat, T* scale);
template <class T>
void quantize_backward_cpu(Quantizer q, const T* w, const T* g_hat, const T* scale, int64_t n,
                           int64_t channels, T* g_w);
template <class T>
void quantize_calibration_cpu(Quantizer q, const T* w, int64_t n, int64_t channels, T* c);

// CUDA (f32), asynchronous on `stream` (a cudaStream_t). `workspace` is device memory of
// workspace_bytes_for(q, channels) bytes (quantizer_table.h).
void quantize_forward_cuda(Quantizer q, int bits, const float* w, int64_t n, int64_t channels,
                           float* w_tilde, float* w_hat, float* scale, void* workspace,
                           void* stream);
void quantize_backward_cuda(Quantizer q, const float* w, const float* g_hat, const float* scale,
                            int64_t n, int64_t channels, float* g_w, void* stream);
// dorefa uses the workspace for its max here and in the forward (the others need none here).
void quantize_calibration_cuda(Quantizer q, const float* w, int64_t n, int64_t channels,
                               float* c, void* workspace, void* stream);

}  // namespace mq::kernels
