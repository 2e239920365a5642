// Error reporting of the CUDA backend (MQ_CUDA_CHECK & co.) and the sync-debug switch.
#include <cstdlib>
#include <cstring>

#include "engine/cuda/cuda_check.h"
#include "engine/error.h"
#include "kernels/cuda_launch.h"

namespace mq::cuda {

bool sync_debug() {
#if defined(MQ_CUDA_SYNC_DEBUG) && MQ_CUDA_SYNC_DEBUG
  return true;
#else
  static const bool on = [] {
    const char* v = std::getenv("MQ_CUDA_SYNC_DEBUG");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
#endif
}

namespace {
const char* hint(cudaError_t e) {
  switch (e) {
    case cudaErrorMemoryAllocation: return " (out of GPU memory: reduce the batch size)";
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
      return " (a kernel faulted; rerun with MQ_CUDA_SYNC_DEBUG=1 to find which)";
    default: return "";
  }
}
}  // namespace

void raise_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
  fail("CUDA error {} ({}){} at {}:{} in `{}`", cudaGetErrorName(e), cudaGetErrorString(e),
       hint(e), file, line, call);
}

void raise_cublas_error(cublasStatus_t s, const char* call, const char* file, int line) {
  fail("cuBLAS error {} ({}) at {}:{} in `{}`", cublasGetStatusName(s), cublasGetStatusString(s),
       file, line, call);
}

void raise_cudnn_error(cudnnStatus_t s, const char* call, const char* file, int line) {
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  fail("cuDNN error {} at {}:{} in `{}`{}{}", cudnnGetErrorString(s), file, line, call,
       detail[0] ? ": " : "", detail);
}

void debug_sync(cudaStream_t stream, const char* what, const char* file, int line) {
  if (!sync_debug()) return;
  cudaError_t e = cudaStreamSynchronize(stream);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) raise_cuda_error(e, what, file, line);
}

}  // namespace mq::cuda

namespace mq::kernels {

void check_launch(const char* kernel, void* stream, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) cuda::raise_cuda_error(e, kernel, file, line);
  cuda::debug_sync(static_cast<cudaStream_t>(stream), kernel, file, line);
}

}  // namespace mq::kernels
