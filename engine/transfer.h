#pragma once
// Moves input batches to their device. On CUDA the host data is staged in a pinned buffer
// (reused between batches, grown when needed) and copied asynchronously on the device's
// stream, so the copy overlaps queued work; on the CPU the tensor is returned as is.
#include "engine/cuda/cuda_api.h"
#include "engine/tensor.h"

namespace mq {

class BatchUploader {
 public:
  explicit BatchUploader(Device device) : device_(device) {}
  Tensor upload(const Tensor& host);

 private:
  Device device_;
  cuda::PinnedBuffer staging_[2];  // alternate, so one can be in flight while the next fills
  int next_ = 0;
};

}  // namespace mq
