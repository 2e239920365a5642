#pragma once
// The one error path for CUDA runtime calls and kernel launches, used by the kernels' launchers
// (kernels/*/*.cu) and the engine's CUDA backend (engine/cuda/cuda_check.h adds cuBLAS and cuDNN
// on top). A failure throws mq::Error naming file:line, the call and CUDA's own message; in
// sync-debug mode (MQ_CUDA_SYNC_DEBUG=1) every checked launch is also synchronized, so a
// faulting kernel is reported at its own launch. Compiled only with CUDA.
#include <cuda_runtime.h>

#include "kernels/cuda_launch.h"

namespace mq::kernels {

[[noreturn]] void raise_cuda_error(cudaError_t e, const char* call, const char* file, int line);
// True when MQ_CUDA_SYNC_DEBUG is set (environment or build flag).
bool sync_debug();
// In sync-debug mode: synchronizes `stream` and checks it.
void debug_sync(cudaStream_t stream, const char* what, const char* file, int line);

}  // namespace mq::kernels

// Runs `call`; a status other than `ok` goes to raise(status, "call", file, line). The checks of
// the CUDA runtime here and of cuBLAS and cuDNN (engine/cuda/cuda_check.h) are this one macro.
#define MQ_CHECK_STATUS(call, ok, raise)                             \
  do {                                                               \
    const auto mq_status_ = (call);                                  \
    if (mq_status_ != (ok)) raise(mq_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define MQ_CUDA_CHECK(call) MQ_CHECK_STATUS(call, cudaSuccess, ::mq::kernels::raise_cuda_error)

#define MQ_CUDA_DEBUG_SYNC(stream, what) \
  ::mq::kernels::debug_sync((stream), (what), __FILE__, __LINE__)
