#pragma once
// Error checking for every cuBLAS and cuDNN call of the backend: a failure throws mq::Error
// naming the file:line, the call's text and the library's own message. CUDA runtime calls and
// launches go through kernels/cuda/cuda_check.h (MQ_CUDA_CHECK, MQ_CHECK_LAUNCH), the one path
// the kernels use too. Only for files of engine/cuda (they include the CUDA headers).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "kernels/cuda/cuda_check.h"

namespace mq::cuda {

[[noreturn]] void raise_cublas_error(cublasStatus_t s, const char* call, const char* file,
                                     int line);
[[noreturn]] void raise_cudnn_error(cudnnStatus_t s, const char* call, const char* file,
                                    int line);

}  // namespace mq::cuda

#define MQ_CUBLAS_CHECK(call) \
  MQ_CHECK_STATUS(call, CUBLAS_STATUS_SUCCESS, ::mq::cuda::raise_cublas_error)
#define MQ_CUDNN_CHECK(call) \
  MQ_CHECK_STATUS(call, CUDNN_STATUS_SUCCESS, ::mq::cuda::raise_cudnn_error)
