// cuBLAS and cuDNN error reporting of the CUDA backend (CUDA runtime errors and the sync-debug
// switch are the kernels' own: kernels/cuda/cuda_check.cpp).
#include "engine/cuda/cuda_check.h"
#include "kernels/base/error.h"

namespace mq::cuda {

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

}  // namespace mq::cuda
