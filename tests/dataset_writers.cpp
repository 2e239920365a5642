#include "dataset_writers.h"

#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <vector>

#include "kernels/base/error.h"

namespace mq::test {

void write_cifar_file(const std::string& path, const Dataset& d, CifarVariant v) {
  d.validate();
  MQ_CHECK(d.channels == 3 && d.height == 32 && d.width == 32,
           "write_cifar_file({}): images are {}x{}x{}, the format needs 3x32x32", path,
           d.channels, d.height, d.width);
  MQ_CHECK(d.classes <= cifar_classes(v),
           "write_cifar_file({}): {} classes do not fit {} ({} classes)", path, d.classes,
           cifar_name(v), cifar_classes(v));
  const size_t record = cifar_record_bytes(v);
  std::vector<uint8_t> raw(d.size() * record);
  for (size_t i = 0; i < d.size(); ++i) {
    uint8_t* r = raw.data() + i * record;
    const auto label = static_cast<uint8_t>(d.labels[i]);
    if (v == CifarVariant::cifar10) {
      r[0] = label;
    } else {
      r[0] = static_cast<uint8_t>(label / 5);
      r[1] = label;
    }
    std::copy(d.image(i), d.image(i) + kCifarImageBytes, r + (record - kCifarImageBytes));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  MQ_CHECK(out.good(), "write_cifar_file: cannot open {} for writing", path);
  out.write(reinterpret_cast<const char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
  out.close();
  MQ_CHECK(out.good(), "write_cifar_file: writing {} failed (disk full?)", path);
}

void write_idx(const std::string& path, const IdxArray& a, bool gzip) {
  uint64_t count = 1;
  for (auto d : a.dims) count *= d;
  MQ_CHECK(!a.dims.empty() && a.dims.size() <= 255 && count == a.data.size(),
           "write_idx({}): {} bytes of data do not fill {} dimensions", path, a.data.size(),
           a.dims.size());
  std::vector<uint8_t> bytes = {0, 0, 0x08, static_cast<uint8_t>(a.dims.size())};
  for (auto d : a.dims)
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<uint8_t>(d >> s));
  bytes.insert(bytes.end(), a.data.begin(), a.data.end());
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    MQ_CHECK(f != nullptr, "write_idx: cannot open {} for writing", path);
    const int n = gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    const int rc = gzclose(f);
    MQ_CHECK(n == static_cast<int>(bytes.size()) && rc == Z_OK, "write_idx: writing {} failed",
             path);
  } else {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    MQ_CHECK(out.good(), "write_idx: cannot open {} for writing", path);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();
    MQ_CHECK(out.good(), "write_idx: writing {} failed (disk full?)", path);
  }
}

}  // namespace mq::test
