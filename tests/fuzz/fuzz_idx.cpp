// libFuzzer target: the IDX reader (data/idx.h), plain and gzip. The first byte's low bit: 0
// writes the rest as the file (the reader detects gzip by its magic, so a corrupt gzip is
// reached too), 1 gzip-compresses the rest first (mutations then reach the IDX header and sizes
// behind a valid gzip stream). A 3-dimensional array read successfully is also loaded as images
// with a matching label file, padded to 32x32 when the next bit is set (load_idx). Only mq::Error
// may escape; anything else is a finding.
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/idx.h"
#include "kernels/base/error.h"

namespace {

std::string temp_path(const char* name) {
  const char* base = std::getenv("TMPDIR");
  const std::string root = std::filesystem::is_directory("/dev/shm") ? "/dev/shm"
                           : base                                    ? base
                                                                     : "/tmp";
  return root + "/mq_fuzz_idx_" + std::to_string(::getpid()) + "_" + name;
}

std::vector<uint8_t> gzip(const uint8_t* data, size_t size) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
  std::vector<uint8_t> out(deflateBound(&zs, size) + 32);
  zs.next_in = const_cast<Bytef*>(data);
  zs.avail_in = static_cast<uInt>(size);
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void write(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string images = temp_path("images"), labels = temp_path("labels");
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  if (mode & 1) {
    const std::vector<uint8_t> gz = gzip(data + 1, size - 1);
    write(images, gz.data(), gz.size());
  } else {
    write(images, data + 1, size - 1);
  }
  try {
    const mq::IdxArray a = mq::read_idx(images);
    if (a.dims.size() == 3 && a.dims[0] <= 4096) {
      std::vector<uint8_t> lb = {0, 0, 8, 1, 0, 0, static_cast<uint8_t>(a.dims[0] >> 8),
                                 static_cast<uint8_t>(a.dims[0])};
      for (uint32_t i = 0; i < a.dims[0]; ++i) lb.push_back(static_cast<uint8_t>(i % 10));
      write(labels, lb.data(), lb.size());
      mq::Dataset d = mq::load_idx(images, labels, 10, (mode & 2) ? 32 : 0, "fuzz");
      d.validate();
    }
  } catch (const mq::Error&) {
  }
  return 0;
}
