// libFuzzer target: the zip reader (engine/io/zip.h): the central directory, then every entry.
#include <cstdint>
#include <string_view>

#include "engine/io/zip.h"
#include "kernels/base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)mq::ZipReader::looks_like_zip(bytes);
  try {
    mq::ZipReader zip(bytes, "fuzz.zip");
    for (const mq::ZipEntry& e : zip.entries()) {
      try {
        const std::string out = zip.read(e);
        if (out.size() != e.size) __builtin_trap();  // never more (or less) than declared
      } catch (const mq::Error&) {
      }
    }
  } catch (const mq::Error&) {
  }
  return 0;
}
