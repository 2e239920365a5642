#pragma once
// Shared by every kernel family: MQ_HD marks per-element math usable on host and device.
#include <cstdint>

#if defined(__CUDACC__)
#define MQ_HD __host__ __device__
#else
#define MQ_HD
#endif
