// CUDA elementwise kernels: one grid-stride map kernel, float4 loads when every pointer is
// 16-byte aligned, the per-element math from elementwise_math.h (the op is a template
// parameter so its switch folds away).
#include <cstdint>

#include "kernels/cuda_launch.h"
#include "kernels/elementwise/elementwise.h"

namespace mq::kernels {
namespace {
constexpr int kThreads = 256;

// y[i] = f(a[i], b[i], y[i]); b and y are read only when kReadsB / kReadsY.
template <bool kReadsB, bool kReadsY, class F>
__global__ void map_kernel(const float* a, const float* b, float* y, int64_t n, bool vec, F f) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t tail = 0;
  if (vec) {
    int64_t n4 = n / 4;
    auto a4 = reinterpret_cast<const float4*>(a);
    auto b4 = reinterpret_cast<const float4*>(b);
    auto y4 = reinterpret_cast<float4*>(y);
    for (int64_t i = start; i < n4; i += stride) {
      float4 va = a4[i];
      float4 vb = kReadsB ? b4[i] : float4{};
      float4 vy = kReadsY ? y4[i] : float4{};
      vy.x = f(va.x, vb.x, vy.x);
      vy.y = f(va.y, vb.y, vy.y);
      vy.z = f(va.z, vb.z, vy.z);
      vy.w = f(va.w, vb.w, vy.w);
      y4[i] = vy;
    }
    tail = n4 * 4;
  }
  for (int64_t i = tail + start; i < n; i += stride)
    y[i] = f(a[i], kReadsB ? b[i] : 0.0f, kReadsY ? y[i] : 0.0f);
}

template <bool kReadsB, bool kReadsY, class F>
void launch_map(const char* name, const float* a, const float* b, float* y, int64_t n, F f,
                void* stream) {
  if (n <= 0) return;
  auto addr = reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(y) |
              (kReadsB ? reinterpret_cast<uintptr_t>(b) : 0);
  bool vec = addr % 16 == 0 && n >= 4;
  unsigned grid = grid_for(vec ? n / 4 : n, kThreads);
  map_kernel<kReadsB, kReadsY>
      <<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(a, b, y, n, vec, f);
  MQ_CHECK_LAUNCH(name, stream);
}

template <UnaryOp Op>
struct UnaryF {
  __device__ float operator()(float a, float, float) const { return apply_unary(Op, a); }
};
template <BinaryOp Op>
struct BinaryF {
  __device__ float operator()(float a, float b, float) const { return apply_binary(Op, a, b); }
};
struct AffineF {
  float alpha, beta;
  __device__ float operator()(float a, float, float) const { return alpha * a + beta; }
};
struct AxpyF {
  float alpha;
  __device__ float operator()(float a, float, float y) const { return y + alpha * a; }
};
struct HardtanhF {
  float lo, hi;
  __device__ float operator()(float x, float, float) const { return hardtanh_of(x, lo, hi); }
};
struct HardtanhGradF {
  float lo, hi;
  __device__ float operator()(float g, float x, float) const {
    return hardtanh_grad_of(g, x, lo, hi);
  }
};
}  // namespace

void unary_cuda(UnaryOp op, const float* x, float* y, int64_t n, void* stream) {
  switch (op) {
    case UnaryOp::neg: return launch_map<false, false>("unary neg", x, nullptr, y, n, UnaryF<UnaryOp::neg>{}, stream);
    case UnaryOp::relu: return launch_map<false, false>("unary relu", x, nullptr, y, n, UnaryF<UnaryOp::relu>{}, stream);
    case UnaryOp::tanh: return launch_map<false, false>("unary tanh", x, nullptr, y, n, UnaryF<UnaryOp::tanh>{}, stream);
    case UnaryOp::abs: return launch_map<false, false>("unary abs", x, nullptr, y, n, UnaryF<UnaryOp::abs>{}, stream);
    case UnaryOp::sign: return launch_map<false, false>("unary sign", x, nullptr, y, n, UnaryF<UnaryOp::sign>{}, stream);
  }
}

void binary_cuda(BinaryOp op, const float* a, const float* b, float* y, int64_t n, void* stream) {
  switch (op) {
    case BinaryOp::add: return launch_map<true, false>("binary add", a, b, y, n, BinaryF<BinaryOp::add>{}, stream);
    case BinaryOp::sub: return launch_map<true, false>("binary sub", a, b, y, n, BinaryF<BinaryOp::sub>{}, stream);
    case BinaryOp::mul: return launch_map<true, false>("binary mul", a, b, y, n, BinaryF<BinaryOp::mul>{}, stream);
    case BinaryOp::relu_grad: return launch_map<true, false>("binary relu_grad", a, b, y, n, BinaryF<BinaryOp::relu_grad>{}, stream);
    case BinaryOp::tanh_grad: return launch_map<true, false>("binary tanh_grad", a, b, y, n, BinaryF<BinaryOp::tanh_grad>{}, stream);
    case BinaryOp::abs_grad: return launch_map<true, false>("binary abs_grad", a, b, y, n, BinaryF<BinaryOp::abs_grad>{}, stream);
  }
}

void affine_cuda(const float* x, float* y, int64_t n, float alpha, float beta, void* stream) {
  launch_map<false, false>("affine", x, nullptr, y, n, AffineF{alpha, beta}, stream);
}

void axpy_cuda(float alpha, const float* x, float* y, int64_t n, void* stream) {
  launch_map<false, true>("axpy", x, nullptr, y, n, AxpyF{alpha}, stream);
}

void hardtanh_cuda(const float* x, float* y, int64_t n, float lo, float hi, void* stream) {
  launch_map<false, false>("hardtanh", x, nullptr, y, n, HardtanhF{lo, hi}, stream);
}

void hardtanh_grad_cuda(const float* g, const float* x, float* gx, int64_t n, float lo, float hi,
                        void* stream) {
  launch_map<true, false>("hardtanh_backward", g, x, gx, n, HardtanhGradF{lo, hi}, stream);
}

}  // namespace mq::kernels
