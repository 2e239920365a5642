#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <span>

#include "kernels/base/error.h"
#include "engine/io/file.h"
#include "engine/io/input_file.h"

namespace fs = std::filesystem;

namespace mq {
namespace {

bool is_gzip(std::span<const uint8_t> raw) {
  return raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b;
}

// Inflates a gzip file (possibly several concatenated members) on demand, so the caller reads
// the IDX header first and then at most the payload the header declares: a small file that
// inflates to gigabytes is refused after the declared size, not after inflating it all.
class Gunzip {
 public:
  Gunzip(std::span<const uint8_t> raw, const std::string& path) : raw_(raw), path_(path) {
    MQ_CHECK(inflateInit2(&zs_, 15 + 16) == Z_OK, "{}: zlib inflateInit2 failed", path);
    zs_.next_in = const_cast<Bytef*>(raw.data());
  }
  ~Gunzip() { inflateEnd(&zs_); }
  Gunzip(const Gunzip&) = delete;
  Gunzip& operator=(const Gunzip&) = delete;

  // Appends up to `want` inflated bytes to `out`; fewer only when the gzip data ends. Corrupt or
  // truncated compressed data is an error.
  void read(std::vector<uint8_t>& out, size_t want) {
    constexpr size_t kChunk = size_t{16} << 20;  // grow the output as bytes arrive
    while (want > 0 && !ended_) {
      const size_t chunk = std::min(want, kChunk);
      const size_t old = out.size();
      out.resize(old + chunk);
      const size_t got = inflate_into(out.data() + old, chunk);
      out.resize(old + got);
      want -= got;
    }
  }

 private:
  // Inflates into [dst, dst + n); returns the bytes produced (< n only at the end of the data).
  size_t inflate_into(uint8_t* dst, size_t n) {
    zs_.next_out = dst;
    zs_.avail_out = static_cast<uInt>(n);  // n <= 16 MiB
    while (zs_.avail_out > 0 && !ended_) {
      const uInt in_chunk = static_cast<uInt>(std::min<size_t>(in_left(), 1u << 30));
      zs_.avail_in = in_chunk;
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      consumed_ += in_chunk - zs_.avail_in;
      if (rc == Z_STREAM_END) {
        if (in_left() == 0) ended_ = true;
        else inflateReset(&zs_);  // another gzip member follows
        continue;
      }
      if (rc == Z_OK) continue;
      // Z_BUF_ERROR: no progress possible with output space left, so the input ran out.
      MQ_CHECK(rc != Z_BUF_ERROR || in_left() > 0,
               "{}: corrupt gzip data (unexpected end of compressed stream); the file is damaged, "
               "re-download or reinstall it", path_);
      fail("{}: corrupt gzip data ({}); the file is damaged, re-download or reinstall it", path_,
           zs_.msg ? std::string(zs_.msg) : "zlib error " + std::to_string(rc));
    }
    return n - zs_.avail_out;
  }
  size_t in_left() const { return raw_.size() - consumed_; }

  std::span<const uint8_t> raw_;
  const std::string& path_;
  z_stream zs_{};
  size_t consumed_ = 0;
  bool ended_ = false;
};

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

// Where the bytes of an IDX file come from: the file itself or its gzip stream. `take` appends
// up to n more bytes (fewer at the end).
class IdxSource {
 public:
  IdxSource(std::span<const uint8_t> raw, const std::string& path) : raw_(raw) {
    if (is_gzip(raw)) gz_.emplace(raw, path);
  }
  bool gzip() const { return gz_.has_value(); }
  void take(std::vector<uint8_t>& out, size_t n) {
    if (gz_) return gz_->read(out, n);
    const size_t k = std::min(n, raw_.size() - pos_);
    out.insert(out.end(), raw_.begin() + static_cast<std::ptrdiff_t>(pos_),
               raw_.begin() + static_cast<std::ptrdiff_t>(pos_ + k));
    pos_ += k;
  }

 private:
  std::span<const uint8_t> raw_;
  size_t pos_ = 0;
  std::optional<Gunzip> gz_;
};

}  // namespace

IdxArray read_idx(const std::string& path) {
  const uint64_t on_disk = input_file_size(path, "IDX file");
  MQ_CHECK(on_disk <= kMaxDataFileBytes,
           "{}: {} bytes is larger than any IDX dataset file ({} bytes at most are read)", path,
           on_disk, kMaxDataFileBytes);
  const std::string file = read_file(path, "IDX file");
  std::span<const uint8_t> raw(reinterpret_cast<const uint8_t*>(file.data()), file.size());
  IdxSource src(raw, path);
  const char* kind = src.gzip() ? "decompressed " : "";

  // The header first: magic, then one big-endian uint32 per dimension.
  std::vector<uint8_t> head;
  src.take(head, 4);
  MQ_CHECK(head.size() >= 4, "{}: {} {}bytes is too short for an IDX header (4-byte magic)", path,
           head.size(), kind);
  MQ_CHECK(head[0] == 0 && head[1] == 0,
           "{}: bad IDX magic {:02x} {:02x} {:02x} {:02x} (expected 00 00 08 0N): not an IDX file",
           path, head[0], head[1], head[2], head[3]);
  MQ_CHECK(head[2] == 0x08, "{}: IDX element type 0x{:02x} ({}) is not supported; only unsigned "
           "byte (0x08) images and labels are", path, head[2], idx_type_name(head[2]));
  const int ndim = head[3];
  MQ_CHECK(ndim >= 1 && ndim <= 4, "{}: IDX header claims {} dimensions (expected 1..4)", path,
           ndim);
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  src.take(head, header - 4);
  MQ_CHECK(head.size() == header, "{}: {} {}bytes is too short for an IDX header with {} "
           "dimensions", path, head.size(), kind, ndim);
  IdxArray a;
  std::vector<int64_t> extents;
  for (int i = 0; i < ndim; ++i) {
    a.dims.push_back(be32(head.data() + 4 + 4 * i));
    extents.push_back(a.dims.back());
  }
  // Overflow-safe, and never more than a dataset file may hold: bounds what is inflated below.
  const uint64_t count = static_cast<uint64_t>(checked_product(
      extents, fmt::format("{}: IDX dimensions", path), static_cast<int64_t>(kMaxDataFileBytes)));

  // Then the payload: at most the declared count plus one byte, which tells a longer file.
  const size_t limit = static_cast<size_t>(count);
  if (!src.gzip())
    MQ_CHECK(raw.size() - header == count,
             "{}: IDX header says {} bytes of data, the file holds {}: the file is {}", path,
             count, raw.size() - header,
             raw.size() - header < count ? "truncated" : "longer than declared");
  src.take(a.data, limit + 1);
  MQ_CHECK(a.data.size() <= limit,
           "{}: the gzip data decompresses to more than the {} bytes of data its IDX header "
           "declares: the file is longer than declared (or not this IDX file)", path, count);
  MQ_CHECK(a.data.size() == limit,
           "{}: IDX header says {} bytes of data, the decompressed file holds {}: the file is "
           "truncated", path, count, a.data.size());
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
  // Each extent is a uint32; the product was bounded by the file. Rows and columns must also
  // fit the int geometry of a Dataset.
  constexpr uint32_t kMaxSide = 65535;
  MQ_CHECK(im.dims[1] > 0 && im.dims[2] > 0 && im.dims[1] <= kMaxSide && im.dims[2] <= kMaxSide,
           "{}: {}x{} images; rows and columns must be 1..{}", images_path, im.dims[1],
           im.dims[2], kMaxSide);
  const int h = static_cast<int>(im.dims[1]), w = static_cast<int>(im.dims[2]);
  MQ_CHECK(pad_to <= 0 || (h <= pad_to && w <= pad_to),
           "{}: {}x{} images do not fit the {}x{} padding target", images_path, h, w, pad_to, pad_to);
  const size_t n = im.dims[0];
  Dataset d;
  d.name = name;
  d.channels = 1;
  d.height = pad_to > 0 ? pad_to : h;
  d.width = pad_to > 0 ? pad_to : w;
  d.classes = classes;
  // Padding enlarges the images: the dataset in memory is bounded like a file.
  checked_product({static_cast<int64_t>(n), d.height, d.width},
                  fmt::format("{}: {} images padded to {}x{}", images_path, n, d.height, d.width),
                  static_cast<int64_t>(kMaxDataFileBytes));
  d.labels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    MQ_CHECK(lb.data[i] < classes, "{}: label {} of item {} is outside 0..{}", labels_path,
             lb.data[i], i, classes - 1);
    d.labels[i] = lb.data[i];
  }
  d.images.assign(n * d.image_bytes(), 0);
  const size_t rows = static_cast<size_t>(h), cols = static_cast<size_t>(w);
  const size_t oy = static_cast<size_t>(d.height - h) / 2, ox = static_cast<size_t>(d.width - w) / 2;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* src = im.data.data() + i * rows * cols;
    uint8_t* dst = d.image(i);
    for (size_t y = 0; y < rows; ++y)
      std::copy(src + y * cols, src + (y + 1) * cols, dst + (y + oy) * d.width + ox);
  }
  return d;
}

Dataset load_fashion_mnist(const std::string& dir_in, bool train) {
  const std::string dir = dir_in.empty() ? kFashionMnistDefaultDir : dir_in;
  const PathCheck d = check_directory(dir);
  MQ_CHECK(d.ok(), "{}: the Fashion-MNIST directory {}; install Debian's dataset-fashion-mnist "
           "(files in {}) or pass the directory holding the IDX files", dir,
           d.missing ? "does not exist" : d.problem, kFashionMnistDefaultDir);
  const std::string prefix = train ? "train" : "t10k";
  auto find = [&](const std::string& stem) {
    for (const char* ext : {"", ".gz"}) {
      fs::path p = fs::path(dir) / (stem + ext);
      // Anything there (a directory, a link loop) is taken: read_idx says what is wrong with it.
      if (!check_regular_file(p.string()).missing) return p.string();
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
