#pragma once
// CUDA kernels behind the NN ops that cuDNN/cuBLAS do not cover (f32, raw pointers, a stream).
// Called by engine/cuda/nn_ops.cpp. Every launcher is asynchronous on `stream`.
#include <cstddef>
#include <cstdint>

#include "kernels/nn/pool_math.h"

namespace mq::kernels {

// y [n, c, plane] += bias [c] per channel; out [c] = the sums of g [n, c, plane] over n and
// plane, in that order, in double (plane 1: a linear layer's [rows, cols]).
void add_channel_bias_cuda(float* y, const float* bias, int64_t n, int64_t c, int64_t plane,
                           void* stream);
void sum_channels_cuda(const float* g, float* out, int64_t n, int64_t c, int64_t plane,
                       void* stream);

// x viewed as [planes, hw]: y[p] = mean of x[p, :]; gx[p, :] = gy[p] / hw.
void global_avg_pool_forward_cuda(const float* x, float* y, int64_t planes, int64_t hw,
                                  void* stream);
void global_avg_pool_backward_cuda(const float* gy, float* gx, int64_t planes, int64_t hw,
                                   void* stream);

// Max pooling over `planes` planes of g.h x g.w: y and indices (flat within the plane) are
// [planes, g.p, g.q]; the backward writes every element of gx [planes, g.h, g.w].
void max_pool2d_forward_cuda(const float* x, float* y, int64_t* indices, int64_t planes,
                             const PoolGeometry& g, void* stream);
void max_pool2d_backward_cuda(const float* gy, const int64_t* indices, float* gx, int64_t planes,
                              const PoolGeometry& g, void* stream);

// Batch norm over x viewed as [n, c, hw], statistics per channel over n*hw values.
// weight/bias may be null (affine off). The launchers need scratch device memory of
// bn_workspace_bytes(n, c) bytes (8-byte aligned).
size_t bn_workspace_bytes(int64_t n, int64_t c);
// Normalizes with the biased batch variance, writes save_mean / save_invstd, and updates the
// running stats: running = (1 - momentum) running + momentum batch (variance unbiased).
void bn_forward_train_cuda(const float* x, const float* weight, const float* bias,
                           float* running_mean, float* running_var, float momentum, float eps,
                           float* y, float* save_mean, float* save_invstd, int64_t n, int64_t c,
                           int64_t hw, void* workspace, void* stream);
void bn_forward_eval_cuda(const float* x, const float* weight, const float* bias,
                          const float* running_mean, const float* running_var, float eps,
                          float* y, int64_t n, int64_t c, int64_t hw, void* stream);
// gx, gw, gb may be null when not wanted.
void bn_backward_train_cuda(const float* gy, const float* x, const float* weight,
                            const float* save_mean, const float* save_invstd, float* gx,
                            float* gw, float* gb, int64_t n, int64_t c, int64_t hw,
                            void* workspace, void* stream);
void bn_backward_eval_cuda(const float* gy, const float* x, const float* weight,
                           const float* running_mean, const float* running_var, float eps,
                           float* gx, float* gw, float* gb, int64_t n, int64_t c, int64_t hw,
                           void* workspace, void* stream);

// Cross-entropy over logits [n, c] with labels [n] (int32 or int64). Forward writes probs
// [n, c] and the mean loss to *loss; it needs n floats of scratch (row_losses). A label out of
// [0, c) makes the loss NaN.
void cross_entropy_forward_cuda(const float* logits, const void* labels, bool labels_i64,
                                float* loss, float* probs, float* row_losses, int64_t n,
                                int64_t c, void* stream);
// glogits = (probs - onehot(labels)) * (*gloss) / n
void cross_entropy_backward_cuda(const float* probs, const void* labels, bool labels_i64,
                                 const float* gloss, float* glogits, int64_t n, int64_t c,
                                 void* stream);
// *count (device) = number of rows whose first argmax equals the label. Overwrites *count.
void count_correct_cuda(const float* logits, const void* labels, bool labels_i64, int64_t n,
                        int64_t c, unsigned long long* count, void* stream);

}  // namespace mq::kernels
