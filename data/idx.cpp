#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <span>

#include "kernels/base/error.h"
#include "engine/io/file.h"

namespace fs = std::filesystem;

namespace mq {
namespace {

bool is_gzip(std::span<const uint8_t> raw) {
  return raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b;
}

// Inflates a gzip file (possibly several concatenated members) completely in memory.
std::vector<uint8_t> gunzip(std::span<const uint8_t> raw, const std::string& path) {
  std::vector<uint8_t> out;
  // The trailer's ISIZE (size mod 2^32) is a good first guess for the output size.
  size_t guess = raw.size() * 4;
  if (raw.size() >= 18) {
    const uint8_t* t = raw.data() + raw.size() - 4;
    const size_t isize = t[0] | t[1] << 8 | t[2] << 16 | uint32_t(t[3]) << 24;
    guess = std::clamp<size_t>(isize, 1024, raw.size() * 1100);  // deflate expands <= 1032x
  }
  out.resize(guess);
  z_stream zs{};
  MQ_CHECK(inflateInit2(&zs, 15 + 16) == Z_OK, "{}: zlib inflateInit2 failed", path);
  zs.next_in = const_cast<Bytef*>(raw.data());
  size_t in_left = raw.size();
  size_t produced = 0;
  int rc = Z_OK;
  while (true) {
    if (produced == out.size()) out.resize(out.size() * 2);
    const uInt in_chunk = static_cast<uInt>(std::min<size_t>(in_left, 1u << 30));
    const uInt out_chunk = static_cast<uInt>(std::min<size_t>(out.size() - produced, 1u << 30));
    zs.avail_in = in_chunk;
    zs.next_out = out.data() + produced;
    zs.avail_out = out_chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    in_left -= in_chunk - zs.avail_in;
    produced += out_chunk - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (in_left == 0) break;
      inflateReset(&zs);  // another gzip member follows
      continue;
    }
    if (rc == Z_BUF_ERROR && in_left == 0) break;  // input ended mid-stream
    if (rc != Z_OK && rc != Z_BUF_ERROR) break;
  }
  const std::string msg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  MQ_CHECK(rc == Z_STREAM_END,
           "{}: corrupt gzip data ({}); the file is damaged, re-download or reinstall it", path,
           rc == Z_OK || rc == Z_BUF_ERROR ? std::string("unexpected end of compressed stream")
                                           : msg.empty() ? "zlib error " + std::to_string(rc) : msg);
  out.resize(produced);
  return out;
}

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

const char* idx_type_name(uint8_t t) {
  switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
  }
  return "unknown";
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  std::error_code ec;
  MQ_CHECK(fs::is_regular_file(path, ec), "{}: file not found", path);
  const std::string file = read_file(path, "IDX file");
  std::span<const uint8_t> raw(reinterpret_cast<const uint8_t*>(file.data()), file.size());
  std::vector<uint8_t> inflated;
  if (is_gzip(raw)) {
    inflated = gunzip(raw, path);
    raw = inflated;
  }
  MQ_CHECK(raw.size() >= 4, "{}: {} bytes is too short for an IDX header (4-byte magic)", path,
           raw.size());
  MQ_CHECK(raw[0] == 0 && raw[1] == 0,
           "{}: bad IDX magic {:02x} {:02x} {:02x} {:02x} (expected 00 00 08 0N): not an IDX file",
           path, raw[0], raw[1], raw[2], raw[3]);
  MQ_CHECK(raw[2] == 0x08, "{}: IDX element type 0x{:02x} ({}) is not supported; only unsigned "
           "byte (0x08) images and labels are", path, raw[2], idx_type_name(raw[2]));
  const int ndim = raw[3];
  MQ_CHECK(ndim >= 1 && ndim <= 4, "{}: IDX header claims {} dimensions (expected 1..4)", path,
           ndim);
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  MQ_CHECK(raw.size() >= header, "{}: {} bytes is too short for an IDX header with {} dimensions",
           path, raw.size(), ndim);
  IdxArray a;
  uint64_t count = 1;
  for (int i = 0; i < ndim; ++i) {
    a.dims.push_back(be32(raw.data() + 4 + 4 * i));
    count *= a.dims.back();
    MQ_CHECK(count <= (uint64_t{1} << 40), "{}: IDX dimensions are implausibly large", path);
  }
  MQ_CHECK(raw.size() - header == count,
           "{}: IDX header says {} bytes of data, the file holds {}: the file is {}", path, count,
           raw.size() - header, raw.size() - header < count ? "truncated" : "longer than declared");
  a.data.assign(raw.begin() + static_cast<std::ptrdiff_t>(header), raw.end());
  return a;
}

Dataset load_idx(const std::string& images_path, const std::string& labels_path, int classes,
                 int pad_to, const std::string& name) {
  const IdxArray im = read_idx(images_path);
  const IdxArray lb = read_idx(labels_path);
  MQ_CHECK(im.dims.size() == 3, "{}: an IDX image file must have 3 dimensions (N, rows, cols), "
           "this one has {} (is it a labels file?)", images_path, im.dims.size());
  MQ_CHECK(lb.dims.size() == 1, "{}: an IDX label file must have 1 dimension (N), this one has {} "
           "(is it an images file?)", labels_path, lb.dims.size());
  MQ_CHECK(im.dims[0] == lb.dims[0], "{} holds {} images but {} holds {} labels: the files do not "
           "belong together", images_path, im.dims[0], labels_path, lb.dims[0]);
  MQ_CHECK(im.dims[0] > 0, "{}: no images", images_path);
  const int h = static_cast<int>(im.dims[1]), w = static_cast<int>(im.dims[2]);
  MQ_CHECK(h > 0 && w > 0, "{}: empty {}x{} images", images_path, h, w);
  MQ_CHECK(pad_to <= 0 || (h <= pad_to && w <= pad_to),
           "{}: {}x{} images do not fit the {}x{} padding target", images_path, h, w, pad_to, pad_to);
  const size_t n = im.dims[0];
  Dataset d;
  d.name = name;
  d.channels = 1;
  d.height = pad_to > 0 ? pad_to : h;
  d.width = pad_to > 0 ? pad_to : w;
  d.classes = classes;
  d.labels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    MQ_CHECK(lb.data[i] < classes, "{}: label {} of item {} is outside 0..{}", labels_path,
             lb.data[i], i, classes - 1);
    d.labels[i] = lb.data[i];
  }
  d.images.assign(n * d.image_bytes(), 0);
  const int oy = (d.height - h) / 2, ox = (d.width - w) / 2;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* src = im.data.data() + i * static_cast<size_t>(h) * w;
    uint8_t* dst = d.image(i);
    for (int y = 0; y < h; ++y)
      std::copy(src + y * w, src + (y + 1) * w, dst + (y + oy) * d.width + ox);
  }
  return d;
}

Dataset load_fashion_mnist(const std::string& dir_in, bool train) {
  const std::string dir = dir_in.empty() ? kFashionMnistDefaultDir : dir_in;
  std::error_code ec;
  const std::string prefix = train ? "train" : "t10k";
  auto find = [&](const std::string& stem) {
    for (const char* ext : {"", ".gz"}) {
      fs::path p = fs::path(dir) / (stem + ext);
      if (fs::exists(p, ec)) return p.string();
    }
    fail("Fashion-MNIST: neither {0} nor {0}.gz found in {1}; install Debian's "
         "dataset-fashion-mnist (files in {2}) or pass the directory holding the IDX files",
         stem, dir, kFashionMnistDefaultDir);
  };
  const std::string images = find(prefix + "-images-idx3-ubyte");
  const std::string labels = find(prefix + "-labels-idx1-ubyte");
  return load_idx(images, labels, 10, 32, "fashion-mnist");
}

}  // namespace mq
