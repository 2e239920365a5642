#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "engine/io/input_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace mq {
namespace {
namespace fs = std::filesystem;

constexpr char kMagic[8] = {'M', 'Q', 'C', 'K', 'P', 'T', '\r', '\n'};
constexpr size_t kHeaderSize = 32;
constexpr int kMaxRank = 16;
constexpr int kMaxMetaDepth = 64;  // run checkpoints nest 3 deep

// Stable on-disk dtype codes (independent of the DType enum's order).
struct Code {
  DType dtype;
  uint8_t code;
};
constexpr Code kCodes[] = {
    {DType::f32, 1}, {DType::f64, 2}, {DType::i32, 3}, {DType::i64, 4}, {DType::u8, 5}};

uint8_t code_of(DType t) {
  for (const Code& c : kCodes)
    if (c.dtype == t) return c.code;
  fail("checkpoint: dtype {} has no file code", dtype_name(t));
}

void put(std::string& out, uint64_t v, size_t n) {
  for (size_t k = 0; k < n; ++k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

uint32_t crc_of(const char* p, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    uInt len = static_cast<uInt>(std::min<size_t>(n, std::numeric_limits<uInt>::max()));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(p), len);
    p += len;
    n -= len;
  }
  return static_cast<uint32_t>(crc);
}

// Bounds-checked little-endian reads over the payload.
class Reader {
 public:
  Reader(const std::string& b, size_t pos, const std::string& src) : b_(b), pos_(pos), src_(src) {}
  uint64_t u(size_t n, const char* what) {
    need(n, what);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(b_[pos_ + k])) << (8 * k);
    pos_ += n;
    return v;
  }
  std::string_view bytes(uint64_t n, const char* what) {
    need(n, what);
    std::string_view v(b_.data() + pos_, n);
    pos_ += n;
    return v;
  }
  size_t pos() const { return pos_; }

 private:
  void need(uint64_t n, const char* what) const {
    if (n > b_.size() - pos_)
      fail("{}: corrupt checkpoint: {} at offset {} needs {} bytes, {} left", src_, what, pos_, n,
           b_.size() - pos_);
  }
  const std::string& b_;
  size_t pos_;
  const std::string& src_;
};

[[noreturn]] void sys_fail(const std::string& what, const std::string& path) {
  fail("{}: {} failed: {}", path, what, std::strerror(errno));
}

void write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      sys_fail("write", path);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

std::string encode_checkpoint(const TensorMap& tensors, const nlohmann::json& meta) {
  std::string payload;
  std::string meta_text;
  try {
    meta_text = meta.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("save_checkpoint: the metadata cannot be written as JSON: {}", e.what());
  }
  put(payload, meta_text.size(), 8);
  payload += meta_text;
  put(payload, tensors.size(), 8);
  for (const auto& [name, t] : tensors) {
    MQ_CHECK(t.defined(), "save_checkpoint: tensor '{}' is undefined", name);
    MQ_CHECK(t.dim() <= kMaxRank, "save_checkpoint: tensor '{}' has rank {} (at most {})", name,
             t.dim(), kMaxRank);
    MQ_CHECK(name.size() <= std::numeric_limits<uint32_t>::max(),
             "save_checkpoint: tensor name too long");
    Tensor host = t.is_cpu() ? t : t.to(Device::cpu());
    put(payload, name.size(), 4);
    payload += name;
    put(payload, code_of(host.dtype()), 1);
    put(payload, static_cast<uint64_t>(host.dim()), 1);
    put(payload, 0, 2);
    for (int64_t d : host.shape()) put(payload, static_cast<uint64_t>(d), 8);
    put(payload, host.nbytes(), 8);
    if (host.nbytes()) payload.append(static_cast<const char*>(host.raw_data()), host.nbytes());
  }
  std::string out(kMagic, sizeof kMagic);
  put(out, kCheckpointVersion, 4);
  put(out, kHeaderSize, 4);
  put(out, payload.size(), 8);
  put(out, crc_of(payload.data(), payload.size()), 4);
  put(out, 0, 4);
  return out + payload;
}

Checkpoint decode_checkpoint(const std::string& b, const std::string& src) {
  if (b.size() < sizeof kMagic || std::memcmp(b.data(), kMagic, sizeof kMagic) != 0)
    fail("{}: not an mq checkpoint (bad magic; {} bytes)", src, b.size());
  if (b.size() < kHeaderSize)
    fail("{}: truncated checkpoint: {} bytes, shorter than the {}-byte header", src, b.size(),
         kHeaderSize);
  Reader h(b, sizeof kMagic, src);
  uint64_t version = h.u(4, "version");
  if (version != kCheckpointVersion)
    fail("{}: checkpoint format version {} is not supported (this build reads version {})", src,
         version, kCheckpointVersion);
  uint64_t header = h.u(4, "header size");
  uint64_t payload_size = h.u(8, "payload size");
  uint32_t crc = static_cast<uint32_t>(h.u(4, "checksum"));
  if (header != kHeaderSize) fail("{}: corrupt checkpoint header (header size {})", src, header);
  if (payload_size != b.size() - kHeaderSize)
    fail("{}: {} checkpoint: the header announces {} payload bytes but the file has {}", src,
         payload_size > b.size() - kHeaderSize ? "truncated" : "corrupt", payload_size,
         b.size() - kHeaderSize);
  uint32_t actual = crc_of(b.data() + kHeaderSize, payload_size);
  if (actual != crc)
    fail("{}: checkpoint checksum mismatch (stored {:08x}, computed {:08x}): the file is corrupt",
         src, crc, actual);

  Checkpoint ck;
  Reader r(b, kHeaderSize, src);
  uint64_t meta_len = r.u(8, "metadata length");
  std::string_view meta = r.bytes(meta_len, "metadata");
  // Copies, comparisons and dumps of a JSON value recurse: nesting is bounded at parse time.
  auto bounded_depth = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > kMaxMetaDepth)
      fail("{}: corrupt checkpoint: metadata nested deeper than {} levels", src, kMaxMetaDepth);
    return true;
  };
  try {
    ck.meta = nlohmann::json::parse(meta, bounded_depth);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: checkpoint metadata is not valid JSON: {}", src, e.what());
  }
  uint64_t count = r.u(8, "tensor count");
  for (uint64_t i = 0; i < count; ++i) {
    std::string name(r.bytes(r.u(4, "name length"), "name"));
    uint8_t code = static_cast<uint8_t>(r.u(1, "dtype"));
    uint64_t rank = r.u(1, "rank");
    r.u(2, "padding");
    const Code* c = nullptr;
    for (const Code& k : kCodes)
      if (k.code == code) c = &k;
    if (!c) fail("{}: tensor '{}' has unknown dtype code {}", src, name, code);
    if (rank > kMaxRank) fail("{}: tensor '{}' has rank {}", src, name, rank);
    Shape shape;
    uint64_t numel = 1;
    for (uint64_t d = 0; d < rank; ++d) {
      uint64_t v = r.u(8, "dimension");
      if (v > (uint64_t{1} << 48) || (v && numel > (uint64_t{1} << 48) / v))
        fail("{}: tensor '{}' has an implausible dimension {}", src, name, v);
      numel *= v;
      shape.push_back(static_cast<int64_t>(v));
    }
    uint64_t nbytes = r.u(8, "data length");
    if (nbytes != numel * dtype_size(c->dtype))
      fail("{}: tensor '{}' {}{} has {} data bytes, expected {}", src, name,
           dtype_name(c->dtype), shape_str(shape), nbytes, numel * dtype_size(c->dtype));
    std::string_view data = r.bytes(nbytes, "tensor data");
    Tensor t = Tensor::empty(shape, c->dtype);
    if (nbytes) std::memcpy(t.raw_data(), data.data(), nbytes);
    if (!ck.tensors.emplace(name, t).second)
      fail("{}: tensor '{}' appears twice", src, name);
  }
  if (r.pos() != b.size())
    fail("{}: {} unexpected bytes after the last tensor", src, b.size() - r.pos());
  return ck;
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  static std::atomic<uint64_t> counter{0};
  fs::path target(path);
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::string tmp = (dir / fmt::format(".{}.tmp.{}.{}", target.filename().string(),
                                       static_cast<long>(::getpid()), counter++))
                        .string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) sys_fail("creating the temporary file " + tmp, path);
  try {
    write_all(fd, bytes.data(), bytes.size(), tmp);
    if (::fsync(fd) != 0) sys_fail("fsync of " + tmp, path);
    if (::close(fd) != 0) {
      fd = -1;
      sys_fail("close of " + tmp, path);
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0) sys_fail("rename of " + tmp, path);
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {  // make the rename durable; a failure here loses nothing already written
    ::fsync(dfd);
    ::close(dfd);
  }
}

void save_checkpoint(const std::string& path, const TensorMap& tensors,
                     const nlohmann::json& meta) {
  std::string bytes;
  try {
    bytes = encode_checkpoint(tensors, meta);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  write_file_atomic(path, bytes);
}

Checkpoint load_checkpoint(const std::string& path) {
  return reading_file(path, "checkpoint", [&] {
    check_input_file(path, "checkpoint");
    return decode_checkpoint(read_file(path, "checkpoint"), path);
  });
}

TensorMap strip_prefix(const TensorMap& in, const std::string& prefix) {
  TensorMap out;
  for (const auto& [name, t] : in)
    if (name.starts_with(prefix)) out[name.substr(prefix.size())] = t;
  return out;
}

}  // namespace mq
