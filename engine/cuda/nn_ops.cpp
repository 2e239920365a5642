// mq::cuda_ops: GEMM via cuBLAS and the launchers of kernels/nn for bias, pooling, batch norm,
// cross-entropy and accuracy. Shapes were validated by the op entry points (engine/ops_nn.cpp).
#include "engine/backend.h"
#include "engine/cuda/context.h"
#include "kernels/nn/nn_cuda.h"

namespace mq::cuda_ops {
namespace {
using cuda::DeviceBuffer;
using cuda::DeviceContext;


bool labels_are_i64(const Tensor& labels) {
  MQ_CHECK(labels.dtype() == DType::i64 || labels.dtype() == DType::i32,
           "labels must be i64 or i32, got {}", labels.describe());
  return labels.dtype() == DType::i64;
}

int as_blas_int(int64_t v) {
  MQ_CHECK(v >= 0 && v <= INT32_MAX, "gemm: dimension {} exceeds cuBLAS's int range", v);
  return static_cast<int>(v);
}

// x [N, C, ...] -> (N, C, product of the rest)
struct NCHW {
  int64_t n, c, hw;
};
NCHW bn_dims(const Tensor& x) {
  int64_t n = x.size(0), c = x.size(1);
  return {n, c, (n != 0 && c != 0) ? x.numel() / (n * c) : 0};
}
}  // namespace

void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
          double beta) {
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: call cuBLAS with the
  // operands swapped; each row-major matrix is read as its column-major transpose.
  int m = as_blas_int(trans_a ? a.size(1) : a.size(0));
  int k = as_blas_int(trans_a ? a.size(0) : a.size(1));
  int n = as_blas_int(trans_b ? b.size(0) : b.size(1));
  if (m == 0 || n == 0) return;
  DeviceContext& ctx = cuda::context(c.device().index);
  float alpha = 1.0f, beta_f = static_cast<float>(beta);
  int lda = std::max(1, as_blas_int(a.size(1)));
  int ldb = std::max(1, as_blas_int(b.size(1)));
  MQ_CUBLAS_CHECK(cublasSgemm(cuda::cublas_handle(ctx), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                              trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b.data<float>(), ldb,
                              a.data<float>(), lda, &beta_f, c.data<float>(), n));
  MQ_CUDA_DEBUG_SYNC(ctx.stream, "gemm");
}

void add_channel_bias(Tensor& y, const Tensor& bias) {
  const int64_t n = y.size(0), c = y.size(1);
  kernels::add_channel_bias_cuda(y.data<float>(), bias.data<float>(), n, c,
                                 n * c != 0 ? y.numel() / (n * c) : 0,
                                 cuda::stream(y.device().index));
}

void sum_channels(const Tensor& g, Tensor& gb) {
  const int64_t n = g.size(0), c = g.size(1);
  kernels::sum_channels_cuda(g.data<float>(), gb.data<float>(), n, c,
                             n * c != 0 ? g.numel() / (n * c) : 0, cuda::stream(g.device().index));
}

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  int64_t planes = x.size(0) * x.size(1);
  kernels::global_avg_pool_forward_cuda(x.data<float>(), y.data<float>(), planes,
                                        planes ? x.numel() / planes : 0,
                                        cuda::stream(x.device().index));
}

void global_avg_pool_backward(const Tensor& gy, Tensor& gx) {
  int64_t planes = gx.size(0) * gx.size(1);
  kernels::global_avg_pool_backward_cuda(gy.data<float>(), gx.data<float>(), planes,
                                         planes ? gx.numel() / planes : 0,
                                         cuda::stream(gx.device().index));
}

static kernels::PoolGeometry pool_geometry(const Tensor& x, const Tensor& y, MaxPool2dParams p) {
  return {x.size(2), x.size(3), y.size(2), y.size(3), p.kernel, p.stride, p.padding};
}

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, MaxPool2dParams p) {
  kernels::max_pool2d_forward_cuda(x.data<float>(), y.data<float>(), indices.data<int64_t>(),
                                   x.size(0) * x.size(1), pool_geometry(x, y, p),
                                   cuda::stream(x.device().index));
}

void max_pool2d_backward(const Tensor& gy, const Tensor& indices, Tensor& gx, MaxPool2dParams p) {
  kernels::max_pool2d_backward_cuda(gy.data<float>(), indices.data<int64_t>(), gx.data<float>(),
                                    gx.size(0) * gx.size(1), pool_geometry(gx, gy, p),
                                    cuda::stream(gx.device().index));
}

void batch_norm_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              Tensor& running_mean, Tensor& running_var, double momentum,
                              double eps, Tensor& y, Tensor& save_mean, Tensor& save_invstd) {
  NCHW d = bn_dims(x);
  DeviceContext& ctx = cuda::context(x.device().index);
  DeviceBuffer ws(ctx, kernels::bn_workspace_bytes(d.n, d.c));
  kernels::bn_forward_train_cuda(x.data<float>(), weight.data<float>(), bias.data<float>(), running_mean.data<float>(),
                                 running_var.data<float>(), static_cast<float>(momentum),
                                 static_cast<float>(eps), y.data<float>(), save_mean.data<float>(),
                                 save_invstd.data<float>(), d.n, d.c, d.hw, ws.get(), ctx.stream);
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& weight, const Tensor& bias,
                             const Tensor& running_mean, const Tensor& running_var, double eps,
                             Tensor& y) {
  NCHW d = bn_dims(x);
  kernels::bn_forward_eval_cuda(x.data<float>(), weight.data<float>(), bias.data<float>(), running_mean.data<float>(),
                                running_var.data<float>(), static_cast<float>(eps), y.data<float>(), d.n, d.c,
                                d.hw, cuda::stream(x.device().index));
}

void batch_norm_backward_train(const Tensor& gy, const Tensor& x, const Tensor& weight,
                               const Tensor& save_mean, const Tensor& save_invstd, Tensor& gx,
                               Tensor& gw, Tensor& gb) {
  NCHW d = bn_dims(x);
  DeviceContext& ctx = cuda::context(x.device().index);
  DeviceBuffer ws(ctx, kernels::bn_workspace_bytes(d.n, d.c));
  kernels::bn_backward_train_cuda(gy.data<float>(), x.data<float>(), weight.data<float>(), save_mean.data<float>(),
                                  save_invstd.data<float>(), gx.data<float>(), gw.data<float>(), gb.data<float>(), d.n, d.c,
                                  d.hw, ws.get(), ctx.stream);
}

void batch_norm_backward_eval(const Tensor& gy, const Tensor& x, const Tensor& weight,
                              const Tensor& running_mean, const Tensor& running_var, double eps,
                              Tensor& gx, Tensor& gw, Tensor& gb) {
  NCHW d = bn_dims(x);
  DeviceContext& ctx = cuda::context(x.device().index);
  DeviceBuffer ws(ctx, kernels::bn_workspace_bytes(d.n, d.c));
  kernels::bn_backward_eval_cuda(gy.data<float>(), x.data<float>(), weight.data<float>(), running_mean.data<float>(),
                                 running_var.data<float>(), static_cast<float>(eps), gx.data<float>(), gw.data<float>(),
                                 gb.data<float>(), d.n, d.c, d.hw, ws.get(), ctx.stream);
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss,
                           Tensor& probs) {
  bool i64 = labels_are_i64(labels);
  int64_t n = logits.size(0), c = logits.size(1);
  DeviceContext& ctx = cuda::context(logits.device().index);
  DeviceBuffer row_losses(ctx, static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float));
  kernels::cross_entropy_forward_cuda(logits.data<float>(), labels.raw_data(), i64, loss.data<float>(),
                                      probs.data<float>(), row_losses.as<float>(), n, c, ctx.stream);
}

void cross_entropy_backward(const Tensor& probs, const Tensor& labels, const Tensor& gloss,
                            Tensor& glogits) {
  bool i64 = labels_are_i64(labels);
  kernels::cross_entropy_backward_cuda(probs.data<float>(), labels.raw_data(), i64, gloss.data<float>(),
                                       glogits.data<float>(), probs.size(0), probs.size(1),
                                       cuda::stream(probs.device().index));
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  bool i64 = labels_are_i64(labels);
  DeviceContext& ctx = cuda::context(logits.device().index);
  DeviceBuffer count(ctx, sizeof(unsigned long long));
  kernels::count_correct_cuda(logits.data<float>(), labels.raw_data(), i64, logits.size(0),
                              logits.size(1), count.as<unsigned long long>(), ctx.stream);
  unsigned long long host = 0;
  MQ_CUDA_CHECK(cudaMemcpyAsync(&host, count.get(), sizeof host, cudaMemcpyDeviceToHost,
                                ctx.stream));
  MQ_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  return static_cast<int64_t>(host);
}

}  // namespace mq::cuda_ops
