// libFuzzer target: PyTorch checkpoint import (engine/io/pth.h), zip and legacy formats.
#include <cstdint>
#include <string_view>

#include "engine/io/pth.h"
#include "kernels/base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    mq::PthInfo info;
    mq::TensorMap m = mq::decode_pth(bytes, "fuzz.pth", &info);
    for (const auto& [name, t] : m)
      if (!t.defined()) __builtin_trap();
  } catch (const mq::Error&) {
  }
  return 0;
}
