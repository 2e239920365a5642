#include "engine/io/npy.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <vector>

#include "engine/io/atomic_dir.h"
#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "engine/io/input_file.h"

namespace mq {
namespace {
namespace fs = std::filesystem;

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;  // numpy pads the header so the data starts 64-byte aligned
constexpr size_t kMaxRank = 64;  // numpy's own limit (NPY_MAXDIMS) is 32 or 64

struct DTypeCode {
  const char* descr;
  DType dtype;
};
// Only little-endian codes: the host is little-endian and we never byte-swap.
constexpr DTypeCode kCodes[] = {{"<f4", DType::f32}, {"<f8", DType::f64}, {"<i8", DType::i64},
                                {"<i4", DType::i32}, {"|u1", DType::u8},  {"<u1", DType::u8}};

// Minimal parser for the header, a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (4, 8), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& source) : s_(text), src_(source) {}

  void parse(std::string& descr, bool& fortran, Shape& shape) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      std::string key = parse_string();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"')
          bad("'descr' is not a simple dtype string (structured dtypes are not supported)");
        descr = parse_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = parse_bool();
        have_order = true;
      } else if (key == "shape") {
        shape = parse_shape();
        have_shape = true;
      } else {
        bad(fmt::format("unexpected header key '{}'", key));
      }
      skip_ws();
      if (peek() == ',') ++pos_;
    }
    if (!have_descr || !have_order || !have_shape)
      bad("header lacks one of 'descr', 'fortran_order', 'shape'");
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    // The header may be megabytes of hostile text: quote only its start.
    fail("{}: malformed .npy header ({}): {}{}", src_, what, s_.substr(0, 200),
         s_.size() > 200 ? "..." : "");
  }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  char peek() {
    skip_ws();
    if (pos_ >= s_.size()) bad("unexpected end");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) bad(fmt::format("expected '{}' at offset {}", c, pos_));
    ++pos_;
  }
  std::string parse_string() {
    char q = peek();
    if (q != '\'' && q != '"') bad(fmt::format("expected a quoted string at offset {}", pos_));
    size_t end = s_.find(q, pos_ + 1);
    if (end == std::string::npos) bad("unterminated string");
    std::string r = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return r;
  }
  bool parse_bool() {
    if (s_.compare(pos_, 4, "True") == 0) return pos_ += 4, true;
    if (s_.compare(pos_, 5, "False") == 0) return pos_ += 5, false;
    bad("'fortran_order' is neither True nor False");
  }
  Shape parse_shape() {
    Shape shape;
    expect('(');
    while (peek() != ')') {
      size_t start = pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      if (pos_ == start) bad("shape holds a non-integer");
      int64_t extent = 0;
      auto [end, ec] = std::from_chars(s_.data() + start, s_.data() + pos_, extent);
      if (ec != std::errc() || end != s_.data() + pos_)
        bad(fmt::format("shape extent {} does not fit in a 64-bit integer",
                        s_.substr(start, std::min<size_t>(pos_ - start, 40))));
      if (shape.size() == kMaxRank) bad(fmt::format("more than {} dimensions", kMaxRank));
      shape.push_back(extent);
      if (peek() == ',') ++pos_;
    }
    ++pos_;
    return shape;
  }

  const std::string& s_;
  const std::string& src_;
  size_t pos_ = 0;
};

DType parse_descr(const std::string& descr, const std::string& source) {
  for (const auto& c : kCodes)
    if (descr == c.descr) return c.dtype;
  if (!descr.empty() && descr[0] == '>')
    fail("{}: big-endian data ('{}') is not supported; re-save it little-endian "
         "(numpy: a.astype(a.dtype.newbyteorder('<')))", source, descr);
  fail("{}: unsupported dtype '{}' (supported: <f4, <f8, <i8, <i4, |u1)", source, descr);
}

const char* descr_of(DType t) {
  switch (t) {
    case DType::f32: return "<f4";
    case DType::f64: return "<f8";
    case DType::i64: return "<i8";
    case DType::i32: return "<i4";
    case DType::u8: return "|u1";
  }
  return "?";
}

uint32_t read_le(const std::string& b, size_t at, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

}  // namespace

Tensor decode_npy(const std::string& b, const std::string& source) {
  MQ_CHECK(b.size() >= kMagicLen + 2 && std::memcmp(b.data(), kMagic, kMagicLen) == 0,
           "{}: not a .npy file (bad magic; expected \\x93NUMPY)", source);
  int major = static_cast<unsigned char>(b[6]);
  int minor = static_cast<unsigned char>(b[7]);
  MQ_CHECK((major == 1 || major == 2) && minor == 0,
           "{}: unsupported .npy format version {}.{} (supported: 1.0, 2.0)", source, major,
           minor);
  size_t len_bytes = major == 1 ? 2 : 4;
  size_t header_start = 8 + len_bytes;
  MQ_CHECK(b.size() >= header_start, "{}: truncated .npy header", source);
  size_t header_len = read_le(b, 8, static_cast<int>(len_bytes));
  MQ_CHECK(b.size() >= header_start + header_len,
           "{}: truncated .npy header ({} header bytes announced, {} present)", source,
           header_len, b.size() - header_start);
  std::string header = b.substr(header_start, header_len);

  std::string descr;
  bool fortran = false;
  Shape shape;
  HeaderParser(header, source).parse(descr, fortran, shape);
  MQ_CHECK(!fortran, "{}: Fortran-order arrays are not supported; save a C-order copy "
           "(numpy: np.ascontiguousarray)", source);
  DType dtype = parse_descr(descr, source);

  // Sizes are checked against the bytes present before anything is allocated.
  const size_t elem = dtype_size(dtype);
  const int64_t numel =
      checked_product(shape, fmt::format("{}: shape {}", source, shape_str(shape)),
                      INT64_MAX / static_cast<int64_t>(elem));
  const uint64_t need = static_cast<uint64_t>(numel) * elem;
  const size_t data_start = header_start + header_len;
  const uint64_t have = b.size() - data_start;
  MQ_CHECK(have >= need, "{}: truncated data: {} {} needs {} bytes, file holds {}", source, descr,
           shape_str(shape), need, have);
  MQ_CHECK(have == need, "{}: {} unexpected bytes after the data of {} {}", source, have - need,
           descr, shape_str(shape));
  Tensor t = Tensor::empty(shape, dtype);
  if (need) std::memcpy(t.raw_data(), b.data() + data_start, need);
  return t;
}

std::string encode_npy(const Tensor& t) {
  MQ_CHECK(t.defined(), "encode_npy: undefined tensor");
  Tensor host = t.is_cpu() ? t : t.to(Device::cpu());
  // Python tuple syntax: (), (5,), (2, 3)
  const Shape& dims = host.shape();
  std::string shape = "(";
  for (size_t i = 0; i < dims.size(); ++i) shape += (i ? ", " : "") + std::to_string(dims[i]);
  shape += dims.size() == 1 ? ",)" : ")";
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
                                 descr_of(host.dtype()), shape);
  // Version 1.0 holds a header of up to 65535 bytes; beyond that numpy switches to 2.0.
  int major = dict.size() + 1 + 10 > 65535 ? 2 : 1;
  size_t prefix = major == 1 ? 10 : 12;
  size_t total = (prefix + dict.size() + 1 + kAlign - 1) / kAlign * kAlign;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicLen);
  out += static_cast<char>(major);
  out += '\0';
  uint32_t len = static_cast<uint32_t>(dict.size());
  for (size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((len >> (8 * i)) & 0xff);
  out += dict;
  out.append(static_cast<const char*>(host.raw_data()), host.nbytes());
  return out;
}

Tensor load_npy(const std::string& path) {
  return reading_file(path, ".npy file", [&] {
    check_input_file(path, ".npy file");
    return decode_npy(read_file(path, ".npy file"), path);
  });
}

void save_npy(const std::string& path, const Tensor& t) {
  write_file_atomic(path, encode_npy(t));
}

namespace {

bool is_npy_name(const std::string& file) {
  return file.size() > 4 && file.compare(file.size() - 4, 4, ".npy") == 0;
}

// "<prefix><name>.npy" -> name; "" when the file is not one of the state's.
std::string state_name(const std::string& file, const std::string& prefix) {
  if (!is_npy_name(file) || file.size() < prefix.size() + 4 ||
      file.compare(0, prefix.size(), prefix) != 0)
    return "";
  return file.substr(prefix.size(), file.size() - prefix.size() - 4);
}

// Every entry of `dir`, without std::filesystem exceptions.
std::vector<fs::directory_entry> list_dir(const std::string& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  MQ_CHECK(!ec, "{}: cannot list the directory: {}", dir, ec.message());
  std::vector<fs::directory_entry> out;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    MQ_CHECK(!ec, "{}: cannot list the directory: {}", dir, ec.message());
    out.push_back(*it);
  }
  MQ_CHECK(!ec, "{}: cannot list the directory: {}", dir, ec.message());
  return out;
}

}  // namespace

std::map<std::string, Tensor> load_npy_dir(const std::string& dir, const std::string& prefix) {
  return reading_file(dir, "directory of .npy files", [&] {
    std::error_code ec;
    fs::file_status st = fs::status(dir, ec);
    MQ_CHECK(!ec || st.type() == fs::file_type::not_found, "{}: cannot open the directory: {}", dir,
             ec.message());
    MQ_CHECK(fs::is_directory(st), "{}: not a directory (expected a folder of .npy files)", dir);
    std::map<std::string, Tensor> out;
    for (const fs::directory_entry& entry : list_dir(dir)) {
      std::string name = state_name(entry.path().filename().string(), prefix);
      if (name.empty()) continue;
      // A matching name that is a directory, a symlink loop or a device is an error, not a
      // tensor silently missing.
      out.emplace(name, load_npy(entry.path().string()));
    }
    MQ_CHECK(!out.empty(), "{}: no files named '{}<name>.npy' found (wrong directory or prefix?)",
             dir, prefix);
    return out;
  });
}

void save_npy_dir(const std::string& dir, const std::map<std::string, Tensor>& tensors,
                  const std::string& prefix) {
  // Names come from files (a .pth's state-dict keys): each must stay one file inside `dir`.
  for (const auto& [name, t] : tensors) {
    check_plain_name(name, "state-dict key");
    check_plain_name(prefix + name + ".npy", "state-dict file name");
  }
  // The old state's other files (other prefixes) are kept; anything that is not a .npy file
  // is refused: the directory is replaced as a whole, and must not hold unrelated data.
  auto check_old = [&](const std::string& old_dir) {
    for (const fs::directory_entry& e : list_dir(old_dir)) {
      std::error_code ec;
      std::string file = e.path().filename().string();
      MQ_CHECK(is_npy_name(file) && e.is_regular_file(ec),
               "{}: holds '{}', which is not a .npy file of a saved state; a save replaces the "
               "whole directory, so choose a new or empty directory (or remove it)",
               dir, file);
    }
  };
  auto fill = [&](const std::string& new_dir, const std::string& old_dir) {
    if (!old_dir.empty() && !prefix.empty())
      for (const fs::directory_entry& e : list_dir(old_dir)) {
        std::string file = e.path().filename().string();
        if (!state_name(file, prefix).empty()) continue;
        std::error_code ec;
        fs::path to = fs::path(new_dir) / file;
        fs::create_hard_link(e.path(), to, ec);
        if (ec) write_new_file(to.string(), read_file(e.path().string(), ".npy file"));
      }
    for (const auto& [name, t] : tensors)
      write_new_file((fs::path(new_dir) / (prefix + name + ".npy")).string(), encode_npy(t));
  };
  replace_directory(dir, "model state", check_old, fill);
}

}  // namespace mq
