#include "engine/transfer.h"

#include <cstring>

namespace mq {

Tensor BatchUploader::upload(const Tensor& host) {
  MQ_CHECK(host.is_cpu(), "BatchUploader: expected a host tensor, got {}", host.describe());
  if (device_.is_cpu()) return host;
  cuda::PinnedBuffer& buf = staging_[next_];
  next_ ^= 1;
  size_t bytes = host.nbytes();
  buf.wait();  // its previous upload must be done before it is overwritten
  if (buf.size() < bytes) buf = cuda::PinnedBuffer(bytes);
  std::memcpy(buf.data(), host.raw_data(), bytes);
  Tensor out = Tensor::empty(host.shape(), host.dtype(), device_);
  buf.upload(out.raw_data(), bytes, device_.index);
  return out;
}

}  // namespace mq
