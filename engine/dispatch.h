#pragma once
// Helpers for op entry points: dtype dispatch on the CPU and the CUDA guard.
#include "engine/cuda/cuda_api.h"
#include "engine/tensor.h"

namespace mq {

// Calls f(float{}) or f(double{}) for a floating tensor's dtype.
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

// Wraps a call into CUDA kernels/libraries: compiled only with CUDA. Without it, no tensor can
// live on a CUDA device (allocation already fails with a clear error), so this is unreachable.
#if MQ_WITH_CUDA
#define MQ_CUDA_CALL(...) __VA_ARGS__
#else
#define MQ_CUDA_CALL(...) ::mq::fail("internal: CUDA path reached in a build without CUDA")
#endif

inline void* stream_of(const Tensor& t) { return cuda::stream(t.device().index); }

}  // namespace mq
