#pragma once
// Error checking for every CUDA runtime, cuBLAS and cuDNN call of the backend: a failure throws
// mq::Error naming the file:line, the call's text and the library's own message. Only for
// files of engine/cuda (they include the CUDA headers); kernels use kernels/cuda_launch.h.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

namespace mq::cuda {

[[noreturn]] void raise_cuda_error(cudaError_t e, const char* call, const char* file, int line);
[[noreturn]] void raise_cublas_error(cublasStatus_t s, const char* call, const char* file,
                                     int line);
[[noreturn]] void raise_cudnn_error(cudnnStatus_t s, const char* call, const char* file,
                                    int line);
// After a library call or launch: in sync-debug mode, synchronizes `stream` and checks.
void debug_sync(cudaStream_t stream, const char* what, const char* file, int line);

}  // namespace mq::cuda

#define MQ_CUDA_CHECK(call)                                                  \
  do {                                                                       \
    cudaError_t mq_err_ = (call);                                            \
    if (mq_err_ != cudaSuccess)                                              \
      ::mq::cuda::raise_cuda_error(mq_err_, #call, __FILE__, __LINE__);      \
  } while (0)

#define MQ_CUBLAS_CHECK(call)                                                \
  do {                                                                       \
    cublasStatus_t mq_st_ = (call);                                          \
    if (mq_st_ != CUBLAS_STATUS_SUCCESS)                                     \
      ::mq::cuda::raise_cublas_error(mq_st_, #call, __FILE__, __LINE__);     \
  } while (0)

#define MQ_CUDNN_CHECK(call)                                                 \
  do {                                                                       \
    cudnnStatus_t mq_st_ = (call);                                           \
    if (mq_st_ != CUDNN_STATUS_SUCCESS)                                      \
      ::mq::cuda::raise_cudnn_error(mq_st_, #call, __FILE__, __LINE__);      \
  } while (0)

#define MQ_CUDA_DEBUG_SYNC(stream, what) ::mq::cuda::debug_sync((stream), (what), __FILE__, __LINE__)
