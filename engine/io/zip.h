#pragma once
// A strict reader of zip archives held in memory: the central directory (zip64 included), stored
// and deflate-compressed entries, CRC-32 verified on every read. Enough for PyTorch's >= 1.6
// checkpoint archives; no writing, no encryption, no multi-disk archives.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mq {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;        // 0 stored, 8 deflate
  uint16_t flags = 0;
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;          // uncompressed
  uint64_t local_offset = 0;  // of the local file header
};

class ZipReader {
 public:
  // Parses the central directory of `bytes` (which must outlive the reader). `source` names the
  // archive in error messages. Throws mq::Error on anything malformed or truncated.
  ZipReader(std::string_view bytes, std::string source);

  // True when `bytes` starts like a zip archive (a local header or an empty archive's end record).
  static bool looks_like_zip(std::string_view bytes);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const;  // nullptr when absent
  // The uncompressed bytes of an entry, CRC-checked.
  std::string read(const ZipEntry& entry) const;
  std::string read(std::string_view name) const;  // error when absent

 private:
  [[noreturn]] void bad(const std::string& what) const;
  std::string_view data_of(const ZipEntry& e) const;  // the compressed bytes, bounds-checked
  // Inflates a deflate entry, never past its declared size.
  std::string inflate_capped(std::string_view raw, const ZipEntry& e) const;

  std::string_view bytes_;
  std::string source_;
  std::vector<ZipEntry> entries_;
};

}  // namespace mq
