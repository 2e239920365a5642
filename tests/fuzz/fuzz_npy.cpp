// libFuzzer target: the .npy reader (engine/io/npy.h) on arbitrary bytes. Whatever decodes must
// re-encode and decode to the same tensor.
#include <cstdint>
#include <cstring>
#include <string>

#include "engine/io/npy.h"
#include "kernels/base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  mq::Tensor t;
  try {
    t = mq::decode_npy(bytes, "fuzz.npy");
  } catch (const mq::Error&) {
    return 0;
  }
  const mq::Tensor again = mq::decode_npy(mq::encode_npy(t), "re-encoded");
  if (again.shape() != t.shape() || again.dtype() != t.dtype() || again.nbytes() != t.nbytes() ||
      (t.nbytes() && std::memcmp(again.raw_data(), t.raw_data(), t.nbytes()) != 0))
    __builtin_trap();
  return 0;
}
