#pragma once
// Shared by every kernel family: MQ_HD marks per-element math usable on host and device.
#include <cstdint>

#if defined(__CUDACC__)
#define MQ_HD __host__ __device__
#else
#define MQ_HD
#endif

// MQ_HD_INLINE: per-element math that must inline into the vectorized CPU loops. Left to its
// heuristics GCC sometimes calls it out of line from a large function, and the loop goes scalar
// (the dorefa 2-bit forward ran 10x slower so).
#if defined(__CUDACC__)
#define MQ_HD_INLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define MQ_HD_INLINE __attribute__((always_inline)) inline
#else
#define MQ_HD_INLINE inline
#endif
