// CUDA runtime errors, launch checks and the sync-debug switch (kernels/cuda/cuda_check.h).
#include "kernels/cuda/cuda_check.h"

#include <cstdlib>
#include <cstring>

#include "kernels/base/error.h"

namespace mq::kernels {

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

void debug_sync(cudaStream_t stream, const char* what, const char* file, int line) {
  if (!sync_debug()) return;
  cudaError_t e = cudaStreamSynchronize(stream);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) raise_cuda_error(e, what, file, line);
}

void check_launch(const char* kernel, void* stream, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) raise_cuda_error(e, kernel, file, line);
  debug_sync(static_cast<cudaStream_t>(stream), kernel, file, line);
}

}  // namespace mq::kernels
