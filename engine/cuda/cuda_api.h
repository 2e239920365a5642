#pragma once
// The CUDA backend as seen from plain C++: no CUDA headers here. Implemented in engine/cuda/*
// when mq is built with CUDA; otherwise engine/cuda_stub.cpp provides versions that throw a clear
// mq::Error, so every caller links and reports "built without CUDA" at run time.
#include <cstddef>

namespace mq::cuda {

bool built_with_cuda();
int device_count();                 // 0 when none is visible or CUDA is not built in
void* device_alloc(size_t bytes, int device);
void device_free(void* ptr, size_t bytes, int device);
// Copies between host and device memory on the device's stream, then synchronizes.
void copy_host_to_device(void* dst, const void* src, size_t bytes, int device);
void copy_device_to_host(void* dst, const void* src, size_t bytes, int device);
void copy_device_to_device(void* dst, const void* src, size_t bytes, int device);
void memset_device(void* dst, int value, size_t bytes, int device);
void synchronize(int device);
// The device's one stream (a cudaStream_t), on which every op of that device runs.
void* stream(int device);

}  // namespace mq::cuda
