// libFuzzer target: mq checkpoints (engine/io/checkpoint.h) and the run checkpoint's progress
// (meta/run/run_checkpoint.h). The first byte chooses whether the header's payload size and CRC are
// fixed up first, so that the fuzzer also explores what lies behind the checksum (the JSON
// metadata, the tensor records, the progress fields).
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/io/checkpoint.h"
#include "kernels/base/error.h"
#include "meta/run/run_checkpoint.h"

namespace {

void put(std::string& b, size_t at, uint64_t v, int n) {
  for (int k = 0; k < n; ++k) b[at + k] = static_cast<char>((v >> (8 * k)) & 0xff);
}

const std::string& temp_path() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/dev/shm") + "/mq_fuzz_checkpoint_" +
           std::to_string(::getpid()) + ".mqck";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string b(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) && b.size() >= 32) {
    put(b, 16, b.size() - 32, 8);
    put(b, 24, crc32(0, reinterpret_cast<const Bytef*>(b.data() + 32), b.size() - 32), 4);
  }
  try {
    mq::Checkpoint ck = mq::decode_checkpoint(b, "fuzz.mqck");
  } catch (const mq::Error&) {
    return 0;
  }
  // It decodes: read its run progress through the file path, as --resume does.
  FILE* f = std::fopen(temp_path().c_str(), "wb");
  if (!f) return 0;
  std::fwrite(b.data(), 1, b.size(), f);
  std::fclose(f);
  try {
    (void)mq::read_run_progress(temp_path());
  } catch (const mq::Error&) {
  }
  std::remove(temp_path().c_str());
  return 0;
}
