#pragma once
// The one way an op's entry point reaches its compute on the tensor's device (docs/architecture.md
// "Adding an op"):
//
//   on_device(x, "relu",
//       [&](auto tag) { using T = decltype(tag); kernels::relu_cpu<T>(x.data<T>(), ...); },
//       [&](auto stream) { kernels::relu_cuda(x.data<float>(), ..., stream); });
//
// The CPU branch gets a float{} or double{} tag for the tensor's dtype (anything else is an error
// naming the op); the CUDA branch gets the device's stream (void*, a cudaStream_t) and runs in
// f32 only. The CUDA branch must be a generic lambda (`auto` parameter): in a build without CUDA
// it is never instantiated, so it may name CUDA launchers that do not exist there.
#include <utility>

#include "engine/cuda/cuda_api.h"
#include "engine/tensor.h"

namespace mq {

inline constexpr bool kWithCuda = MQ_WITH_CUDA;

// Calls f(float{}) or f(double{}) for a floating dtype.
template <class F>
decltype(auto) dispatch_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    default: fail("{}: unsupported dtype {} (expected f32 or f64)", op, dtype_name(t));
  }
}

// CUDA ops run in f32.
inline void check_cuda_f32(const Tensor& t, const char* op) {
  MQ_CHECK(t.dtype() == DType::f32, "{}: CUDA tensors must be f32, got {}", op, t.describe());
}

inline void* stream_of(const Tensor& t) { return cuda::stream(t.device().index); }

template <class CpuFn, class CudaFn>
decltype(auto) on_device(const Tensor& t, const char* op, CpuFn&& cpu, CudaFn&& cuda) {
  if (t.is_cuda()) {
    check_cuda_f32(t, op);
    if constexpr (kWithCuda) {
      return cuda(stream_of(t));
    } else {
      // No tensor can live on a CUDA device in such a build (allocation fails with a clear
      // error first), so this is unreachable.
      fail("internal: {}: CUDA path reached in a build without CUDA", op);
    }
  }
  return dispatch_floating(t.dtype(), op, std::forward<CpuFn>(cpu));
}

}  // namespace mq
