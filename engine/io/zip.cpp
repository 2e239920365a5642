#include "engine/io/zip.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/base/error.h"

namespace mq {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22;
constexpr size_t kEnd64LocatorSize = 20;
constexpr size_t kEnd64Size = 56;
constexpr size_t kCentralSize = 46;
constexpr size_t kLocalSize = 30;
constexpr size_t kMaxComment = 0xffff;
constexpr uint16_t kZip64ExtraId = 0x0001;

// Little-endian field reads at an absolute offset, bounds-checked by the caller.
uint16_t le16(std::string_view b, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) |
                               (static_cast<uint8_t>(b[at + 1]) << 8));
}
uint32_t le32(std::string_view b, size_t at) {
  return static_cast<uint32_t>(le16(b, at)) | (static_cast<uint32_t>(le16(b, at + 2)) << 16);
}
uint64_t le64(std::string_view b, size_t at) {
  return static_cast<uint64_t>(le32(b, at)) | (static_cast<uint64_t>(le32(b, at + 4)) << 32);
}

}  // namespace

ZipReader::ZipReader(std::string_view bytes, std::string source)
    : bytes_(bytes), source_(std::move(source)) {
  const size_t n = bytes_.size();
  if (n < kEndSize) bad(fmt::format("{} bytes is too short for a zip archive (truncated?)", n));

  // The end-of-central-directory record sits in the last 22 + 65535 bytes (after it, a comment).
  size_t end = std::string::npos;
  size_t lowest = n - kEndSize > kMaxComment ? n - kEndSize - kMaxComment : 0;
  for (size_t at = n - kEndSize + 1; at-- > lowest;) {
    if (le32(bytes_, at) == kEndSig && at + kEndSize + le16(bytes_, at + 20) == n) {
      end = at;
      break;
    }
  }
  if (end == std::string::npos)
    bad("no end-of-central-directory record: the file is truncated or not a zip archive");
  if (le16(bytes_, end + 4) != 0 || le16(bytes_, end + 6) != 0)
    bad("multi-disk archives are not supported");
  uint64_t count = le16(bytes_, end + 10);
  uint64_t cd_size = le32(bytes_, end + 12);
  uint64_t cd_offset = le32(bytes_, end + 16);

  if (count == 0xffff || cd_size == 0xffffffffu || cd_offset == 0xffffffffu) {
    // zip64: a locator right before the end record points to the zip64 end record.
    if (end < kEnd64LocatorSize || le32(bytes_, end - kEnd64LocatorSize) != kEnd64LocatorSig)
      bad("zip64 sizes without a zip64 end-of-central-directory locator");
    uint64_t at = le64(bytes_, end - kEnd64LocatorSize + 8);
    if (n < kEnd64Size || at > n - kEnd64Size || le32(bytes_, at) != kEnd64Sig)
      bad("the zip64 end-of-central-directory record is missing or out of bounds");
    count = le64(bytes_, at + 32);
    cd_size = le64(bytes_, at + 40);
    cd_offset = le64(bytes_, at + 48);
  }
  if (cd_offset > n || cd_size > n - cd_offset)
    bad(fmt::format("central directory (offset {}, {} bytes) lies beyond the end of the {}-byte "
                    "file (truncated?)",
                    cd_offset, cd_size, n));
  if (count > cd_size / kCentralSize)
    bad(fmt::format("{} entries cannot fit a {}-byte central directory", count, cd_size));

  entries_.reserve(count);
  size_t at = cd_offset;
  const size_t cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (at + kCentralSize > cd_end || le32(bytes_, at) != kCentralSig)
      bad(fmt::format("central directory entry {} at offset {} is malformed", i, at));
    ZipEntry e;
    e.flags = le16(bytes_, at + 8);
    e.method = le16(bytes_, at + 10);
    e.crc32 = le32(bytes_, at + 16);
    e.compressed_size = le32(bytes_, at + 20);
    e.size = le32(bytes_, at + 24);
    size_t name_len = le16(bytes_, at + 28), extra_len = le16(bytes_, at + 30),
           comment_len = le16(bytes_, at + 32);
    uint16_t disk = le16(bytes_, at + 34);
    e.local_offset = le32(bytes_, at + 42);
    size_t var = at + kCentralSize;
    if (var + name_len + extra_len + comment_len > cd_end)
      bad(fmt::format("central directory entry {} runs past the directory", i));
    e.name.assign(bytes_.substr(var, name_len));

    // zip64 extended information: the 64-bit values of the fields that read 0xffffffff.
    size_t x = var + name_len, x_end = x + extra_len;
    while (x + 4 <= x_end) {
      uint16_t id = le16(bytes_, x), len = le16(bytes_, x + 2);
      if (x + 4 + len > x_end) bad(fmt::format("entry '{}': malformed extra field", e.name));
      if (id == kZip64ExtraId) {
        size_t f = x + 4, f_end = f + len;
        auto take = [&](uint64_t& field) {
          if (f + 8 > f_end) bad(fmt::format("entry '{}': short zip64 extra field", e.name));
          field = le64(bytes_, f);
          f += 8;
        };
        if (e.size == 0xffffffffu) take(e.size);
        if (e.compressed_size == 0xffffffffu) take(e.compressed_size);
        if (e.local_offset == 0xffffffffu) take(e.local_offset);
      }
      x += 4 + len;
    }
    if (disk != 0 && disk != 0xffff) bad("multi-disk archives are not supported");
    entries_.push_back(std::move(e));
    at = var + name_len + extra_len + comment_len;
  }
}

bool ZipReader::looks_like_zip(std::string_view b) {
  return b.size() >= 4 && (le32(b, 0) == kLocalSig || le32(b, 0) == kEndSig);
}

void ZipReader::bad(const std::string& what) const {
  fail("{}: invalid zip archive: {}", source_, what);
}

const ZipEntry* ZipReader::find(std::string_view name) const {
  for (const ZipEntry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

std::string_view ZipReader::data_of(const ZipEntry& e) const {
  const size_t n = bytes_.size();
  if (e.local_offset > n || n - e.local_offset < kLocalSize ||
      le32(bytes_, e.local_offset) != kLocalSig)
    bad(fmt::format("entry '{}': no local header at offset {} (truncated?)", e.name,
                    e.local_offset));
  uint64_t start = e.local_offset + kLocalSize + le16(bytes_, e.local_offset + 26) +
                   le16(bytes_, e.local_offset + 28);
  if (start > n || e.compressed_size > n - start)
    bad(fmt::format("entry '{}': its {} bytes at offset {} run past the end of the {}-byte file "
                    "(truncated?)",
                    e.name, e.compressed_size, start, n));
  return bytes_.substr(start, e.compressed_size);
}

std::string ZipReader::inflate_capped(std::string_view raw, const ZipEntry& e) const {
  // The output grows with what the stream really inflates (not with the declared size, which
  // the file may not back), and never past the declared size: a stream that holds more is
  // refused as soon as it reaches it, without inflating the rest.
  constexpr size_t kChunk = size_t{1} << 20;
  constexpr size_t kMaxIo = std::numeric_limits<uInt>::max();
  std::string out;
  size_t filled = 0, in_done = 0;
  bool overflow = false;
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) bad("zlib inflateInit2 failed");
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (filled == out.size() && out.size() < e.size)
      out.resize(out.size() +
                 std::min<uint64_t>(e.size - out.size(), std::max(out.size(), kChunk)));
    // At the declared size, room for one byte more: the stream must end without writing it.
    char probe;
    const bool at_cap = filled == e.size;
    z.next_out =
        at_cap ? reinterpret_cast<Bytef*>(&probe) : reinterpret_cast<Bytef*>(out.data() + filled);
    z.avail_out = at_cap ? 1 : static_cast<uInt>(std::min(out.size() - filled, kMaxIo));
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data() + in_done));
    z.avail_in = static_cast<uInt>(std::min(raw.size() - in_done, kMaxIo));
    const uInt in_before = z.avail_in, out_before = z.avail_out;
    rc = inflate(&z, Z_NO_FLUSH);
    const size_t produced = out_before - z.avail_out;
    in_done += in_before - z.avail_in;
    if (at_cap && produced) {
      overflow = true;
      break;
    }
    filled += produced;
    if (rc == Z_BUF_ERROR) {
      if (in_before == z.avail_in && produced == 0) break;  // no progress: truncated stream
      rc = Z_OK;
    }
  }
  std::string msg = overflow ? "it inflates to more than that" : z.msg ? z.msg : "short output";
  inflateEnd(&z);
  if (overflow || rc != Z_STREAM_END || filled != e.size)
    bad(fmt::format("entry '{}': deflate data is corrupt or does not hold {} bytes ({})", e.name,
                    e.size, msg));
  return out;
}

std::string ZipReader::read(const ZipEntry& e) const {
  if (e.flags & 1) bad(fmt::format("entry '{}' is encrypted", e.name));
  std::string_view raw = data_of(e);
  std::string out;
  if (e.method == 0) {
    if (e.compressed_size != e.size)
      bad(fmt::format("stored entry '{}' has compressed size {} != size {}", e.name,
                      e.compressed_size, e.size));
    out.assign(raw);
  } else if (e.method == 8) {
    // Deflate expands at most ~1032x: a larger declared size is a corrupt (or hostile) header.
    if (e.size / 1032 > e.compressed_size + 1)
      bad(fmt::format("entry '{}' claims {} bytes from {} compressed", e.name, e.size,
                      e.compressed_size));
    out = inflate_capped(raw, e);
  } else {
    bad(fmt::format("entry '{}' uses compression method {} (only stored and deflate are "
                    "supported)",
                    e.name, e.method));
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t done = 0; done < out.size();) {
    size_t len = std::min<size_t>(out.size() - done, std::numeric_limits<uInt>::max());
    crc = crc32(crc, reinterpret_cast<const Bytef*>(out.data() + done), static_cast<uInt>(len));
    done += len;
  }
  if (crc != e.crc32)
    bad(fmt::format("entry '{}' fails its CRC-32 check (stored {:08x}, computed {:08x}): the "
                    "file is corrupt",
                    e.name, e.crc32, static_cast<uint32_t>(crc)));
  return out;
}

std::string ZipReader::read(std::string_view name) const {
  const ZipEntry* e = find(name);
  if (!e) bad(fmt::format("no entry named '{}'", name));
  return read(*e);
}

}  // namespace mq
