#include "engine/device.h"

#include "engine/cuda/cuda_api.h"
#include "kernels/base/error.h"
#include "kernels/base/text.h"

namespace mq {

int cuda_device_count() { return cuda::device_count(); }

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "auto") return cuda_device_count() > 0 ? cuda(0) : cpu();
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    int index = 0;
    MQ_CHECK(text.size() <= 5 || parse_whole(text.substr(5), index),
             "--device '{}': expected cuda:N with N a device number", text);
    MQ_CHECK(cuda::built_with_cuda(),
             "--device {}: this mq was built without CUDA; rebuild with the CUDA toolkit "
             "(cmake -DMQ_CUDA=ON) or use --device cpu", text);
    int count = cuda_device_count();
    MQ_CHECK(count > 0, "--device {}: no CUDA device is visible; use --device cpu or auto", text);
    MQ_CHECK(index >= 0 && index < count, "--device {}: only {} CUDA device(s) visible", text,
             count);
    return cuda(index);
  }
  fail("--device '{}': expected cpu, cuda, cuda:N or auto", text);
}

}  // namespace mq
