#pragma once
// For the launchers of kernels/*/*.cu: checks a kernel launch (and, in sync-debug mode, its
// execution) and throws mq::Error with file:line. Defined by the engine's CUDA backend
// (engine/cuda/errors.cpp), which owns error reporting and the MQ_CUDA_SYNC_DEBUG switch.
#include <cstdint>

namespace mq::kernels {

void check_launch(const char* kernel, void* stream, const char* file, int line);

// Grid for a grid-stride loop over n elements with `threads` per block: enough blocks to fill
// the GPU several times over, capped so huge n stays in range (the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 65536) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned>(blocks);
}

}  // namespace mq::kernels

#define MQ_CHECK_LAUNCH(kernel, stream) \
  ::mq::kernels::check_launch((kernel), (stream), __FILE__, __LINE__)
