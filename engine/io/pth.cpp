#include "engine/io/pth.h"
#include "engine/io/file.h"
#include "engine/io/input_file.h"

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/io/pth_pickle.h"
#include "engine/io/zip.h"

namespace mq {
namespace {

using pickle::Kind;
using pickle::Ref;

// ---- storage types --------------------------------------------------------------------------
enum class Conv { same, f64_to_f32, f16_to_f32, bf16_to_f32, unsupported };
struct StorageType {
  const char* name;   // torch.<name>Storage
  const char* torch;  // torch dtype, for messages
  size_t elem;        // bytes per element
  DType out;          // the dtype mq returns
  Conv conv;
};
constexpr StorageType kTypes[] = {
    {"Float", "float32", 4, DType::f32, Conv::same},
    {"Double", "float64", 8, DType::f32, Conv::f64_to_f32},
    {"Half", "float16", 2, DType::f32, Conv::f16_to_f32},
    {"BFloat16", "bfloat16", 2, DType::f32, Conv::bf16_to_f32},
    {"Long", "int64", 8, DType::i64, Conv::same},
    {"Int", "int32", 4, DType::i32, Conv::same},
    {"Byte", "uint8", 1, DType::u8, Conv::same},
    {"Short", "int16", 2, DType::f32, Conv::unsupported},
    {"Char", "int8", 1, DType::f32, Conv::unsupported},
    {"Bool", "bool", 1, DType::f32, Conv::unsupported},
    {"ComplexFloat", "complex64", 8, DType::f32, Conv::unsupported},
    {"ComplexDouble", "complex128", 16, DType::f32, Conv::unsupported},
};

const StorageType& storage_type(const std::string& name, const std::string& source) {
  for (const StorageType& t : kTypes)
    if (name == t.name) return t;
  fail("{}: unknown storage type torch.{}Storage", source, name);
}

float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;  // +-0
  } else {        // subnormal: renormalize
    int e = -1;
    do {
      ++e;
      man <<= 1;
    } while (!(man & 0x400));
    bits = sign | static_cast<uint32_t>(112 - e) << 23 | ((man & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Copies element `src_index` of a storage of type `t` to `dst` (of dtype t.out).
inline void convert_one(const StorageType& t, const char* src, int64_t src_index, char* dst) {
  const char* p = src + src_index * static_cast<int64_t>(t.elem);
  switch (t.conv) {
    case Conv::same: std::memcpy(dst, p, t.elem); return;
    case Conv::f64_to_f32: {
      double d;
      std::memcpy(&d, p, 8);
      float f = static_cast<float>(d);
      std::memcpy(dst, &f, 4);
      return;
    }
    case Conv::f16_to_f32: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      float f = half_to_float(h);
      std::memcpy(dst, &f, 4);
      return;
    }
    case Conv::bf16_to_f32: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      uint32_t bits = static_cast<uint32_t>(h) << 16;
      std::memcpy(dst, &bits, 4);
      return;
    }
    case Conv::unsupported: return;
  }
}

// ---- the loader -------------------------------------------------------------------------------
class Loader {
 public:
  Loader(std::string_view bytes, std::string source) : bytes_(bytes), src_(std::move(source)) {}

  TensorMap run(PthInfo& info) {
    Ref root;
    if (ZipReader::looks_like_zip(bytes_)) {
      info.format = "zip";
      root = read_zip();
    } else if (!bytes_.empty() && static_cast<uint8_t>(bytes_[0]) == 0x80) {
      info.format = "legacy";
      root = read_legacy();
    } else if (bytes_.size() > 262 && bytes_.substr(257, 5) == "ustar") {
      fail("{}: a tar-format PyTorch checkpoint (PyTorch < 0.4) is not supported; load and "
           "re-save it with a newer PyTorch",
           src_);
    } else {
      fail("{}: not a PyTorch checkpoint: neither a zip archive (PyTorch >= 1.6) nor a legacy "
           "pickle stream ({} bytes, first byte 0x{:02x})",
           src_, bytes_.size(), bytes_.empty() ? 0 : static_cast<uint8_t>(bytes_[0]));
    }
    return state_dict(root, info);
  }

 private:
  // A storage reference from a persistent id ('storage', torch.XStorage, key, location, numel
  // [, view_metadata]).
  Ref persistent_storage(const Ref& pid, size_t offset, const std::string& where, bool legacy) {
    auto bad = [&](const std::string& what) -> Ref {
      fail("{}: pickle offset {}: persistent id {}", where, offset, what);
    };
    if (pid->kind != Kind::tuple)
      return bad(fmt::format("is a {}, not a tuple", kind_name(pid->kind)));
    const auto& a = pid->items;
    size_t want = legacy ? 6 : 5;
    if (a.empty() || a[0]->kind != Kind::string || a[0]->str != "storage")
      return bad("is not a ('storage', ...) tuple");
    if (a.size() != want)
      return bad(fmt::format("has {} fields; a {} storage id has {}", a.size(),
                             legacy ? "legacy" : "zip", want));
    if (a[1]->kind != Kind::global || a[1]->str.rfind("torch ", 0) != 0 ||
        a[1]->str.size() < 13 || a[1]->str.substr(a[1]->str.size() - 7) != "Storage")
      return bad("does not name a torch storage type");
    if (a[2]->kind != Kind::string || a[3]->kind != Kind::string || a[4]->kind != Kind::integer)
      return bad("has a malformed key, location or size");
    Ref s = pickle::make(Kind::storage);
    s->storage.type = a[1]->str.substr(6, a[1]->str.size() - 6 - 7);
    s->storage.key = a[2]->str;
    s->storage.location = a[3]->str;
    s->storage.numel = a[4]->i;
    storage_type(s->storage.type, where);  // known type
    if (legacy && a[5]->kind != Kind::none) {
      const Ref& v = a[5];  // (view_key, offset, view_size) into the root storage
      if (v->kind != Kind::tuple || v->items.size() != 3 || v->items[1]->kind != Kind::integer ||
          v->items[2]->kind != Kind::integer)
        return bad("has malformed view metadata");
      s->storage.view_offset = v->items[1]->i;
      s->storage.numel = v->items[2]->i;
    }
    auto [it, inserted] = types_.emplace(s->storage.key, s->storage.type);
    if (!inserted && it->second != s->storage.type)
      return bad(fmt::format("gives storage '{}' two types ({} and {})", s->storage.key,
                             it->second, s->storage.type));
    return s;
  }

  Ref read_zip() {
    ZipReader zip(bytes_, src_);
    std::string prefix;
    bool torchscript = false;
    for (const ZipEntry& e : zip.entries()) {
      size_t slash = e.name.find('/');
      if (slash != std::string::npos && e.name.substr(slash) == "/data.pkl") {
        if (!prefix.empty())
          fail("{}: the archive holds two checkpoints ({} and {})", src_, prefix, e.name);
        prefix = e.name.substr(0, slash);
      }
      if (e.name.find("/code/") != std::string::npos || e.name.ends_with("/constants.pkl"))
        torchscript = true;
    }
    if (torchscript)
      fail("{}: a TorchScript archive (torch.jit.save) is not a state dict; save "
           "model.state_dict() with torch.save instead",
           src_);
    if (prefix.empty())
      fail("{}: a zip archive without a '<dir>/data.pkl' entry: not a PyTorch checkpoint", src_);
    if (const ZipEntry* bo = zip.find(prefix + "/byteorder")) {
      std::string order = zip.read(*bo);
      if (order != "little")
        fail("{}: the checkpoint's byte order is '{}'; only little-endian is supported", src_,
             order);
    }
    std::string where = src_ + ":" + prefix + "/data.pkl";
    std::string pkl = zip.read(prefix + "/data.pkl");
    auto result = pickle::unpickle(pkl, 0, where, [&](const Ref& pid, size_t off) {
      return persistent_storage(pid, off, where, false);
    });
    if (result.end != pkl.size())
      fail("{}: {} bytes after the pickle's STOP", where, pkl.size() - result.end);
    for (const auto& [key, type] : types_) {
      std::string name = prefix + "/data/" + key;
      const ZipEntry* e = zip.find(name);
      if (!e)
        fail("{}: storage '{}' is referenced by the pickle but the archive has no entry '{}' "
             "(damaged or incomplete archive)",
             src_, key, name);
      owned_[key] = zip.read(*e);
      storages_[key] = owned_[key];
    }
    return result.value;
  }

  Ref read_legacy() {
    static const unsigned char kMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                           0x20, 0x6a, 0xa8, 0x50, 0x19};
    auto no_persid = [&](const std::string& what) {
      return [this, what](const Ref&, size_t off) -> Ref {
        fail("{}: pickle offset {}: unexpected persistent id in the {}", src_, off, what);
      };
    };
    auto magic = pickle::unpickle(bytes_, 0, src_, no_persid("magic number"));
    std::string m = magic.value->str;
    while (!m.empty() && m.back() == '\0') m.pop_back();
    if (magic.value->kind != Kind::big_int || m.size() != sizeof kMagic ||
        std::memcmp(m.data(), kMagic, sizeof kMagic) != 0)
      fail("{}: a pickle stream without PyTorch's magic number: not a PyTorch checkpoint", src_);
    auto proto = pickle::unpickle(bytes_, magic.end, src_, no_persid("protocol version"));
    if (proto.value->kind != Kind::integer || proto.value->i != 1001)
      fail("{}: unsupported legacy serialization protocol {} (expected 1001)", src_,
           pickle::describe(proto.value));
    auto sys = pickle::unpickle(bytes_, proto.end, src_, no_persid("system info"));
    const Ref* le = sys.value->kind == Kind::dict ? sys.value->get("little_endian") : nullptr;
    if (!le || (*le)->kind != Kind::boolean || !(*le)->b)
      fail("{}: the checkpoint was written on a big-endian machine or lacks system info; only "
           "little-endian checkpoints are supported",
           src_);
    auto obj = pickle::unpickle(bytes_, sys.end, src_, [&](const Ref& pid, size_t off) {
      return persistent_storage(pid, off, src_, true);
    });
    auto keys = pickle::unpickle(bytes_, obj.end, src_, no_persid("storage key list"));
    if (keys.value->kind != Kind::list)
      fail("{}: expected the list of storage keys at offset {}, found a {}", src_, obj.end,
           pickle::describe(keys.value));
    size_t pos = keys.end;
    for (const Ref& k : keys.value->items) {
      if (k->kind != Kind::string) fail("{}: a storage key is a {}", src_, kind_name(k->kind));
      auto it = types_.find(k->str);
      if (it == types_.end())
        fail("{}: storage '{}' is listed but no tensor references it", src_, k->str);
      const StorageType& t = storage_type(it->second, src_);
      if (bytes_.size() - pos < 8)
        fail("{}: the file ends at offset {} before the size of storage '{}' (truncated file)",
             src_, bytes_.size(), k->str);
      int64_t count;
      std::memcpy(&count, bytes_.data() + pos, 8);
      pos += 8;
      if (count < 0 || static_cast<uint64_t>(count) > (bytes_.size() - pos) / t.elem)
        fail("{}: storage '{}' claims {} elements of {} bytes at offset {} but the file has {} "
             "bytes left (truncated file)",
             src_, k->str, count, t.elem, pos, bytes_.size() - pos);
      storages_[k->str] = bytes_.substr(pos, count * t.elem);
      pos += count * t.elem;
    }
    if (pos != bytes_.size())
      fail("{}: {} unexpected bytes after the last storage (offset {})", src_,
           bytes_.size() - pos, pos);
    for (const auto& [key, type] : types_)
      if (!storages_.count(key))
        fail("{}: storage '{}' is referenced by the pickle but missing from the file's storage "
             "list (damaged file)",
             src_, key);
    return obj.value;
  }

  Tensor materialize(const std::string& name, const pickle::TensorRef& r, PthInfo& info) {
    const pickle::StorageRef& s = r.storage->storage;
    const StorageType& t = storage_type(s.type, src_);
    auto bad = [&](const std::string& what) {
      fail("{}: tensor '{}' ({} storage '{}'): {}", src_, name, t.torch, s.key, what);
    };
    if (t.conv == Conv::unsupported)
      bad(fmt::format("dtype torch.{} is not supported (mq imports float32/64, float16, "
                      "bfloat16, int64, int32 and uint8 tensors)",
                      t.torch));
    if (r.size.size() != r.stride.size())
      bad(fmt::format("size {} and stride {} differ in rank", shape_str(r.size),
                      shape_str(r.stride)));
    std::string_view bytes = storages_.at(s.key);
    if (bytes.size() % t.elem) bad("storage size is not a whole number of elements");
    const int64_t available = static_cast<int64_t>(bytes.size() / t.elem);
    if (r.offset < 0 || s.view_offset < 0) bad("negative storage offset");
    int64_t numel = 1;
    for (size_t d = 0; d < r.size.size(); ++d) {
      if (r.size[d] < 0 || r.stride[d] < 0)
        bad(fmt::format("negative size or stride ({} / {})", shape_str(r.size),
                        shape_str(r.stride)));
      if (r.size[d] > (int64_t{1} << 40) || (r.size[d] && numel > (int64_t{1} << 40) / r.size[d]))
        bad(fmt::format("size {} is implausibly large", shape_str(r.size)));
      numel *= r.size[d];
    }
    // Broadcast (stride-0) tensors may hold more elements than their storage: bounded, so a
    // damaged size cannot ask for terabytes.
    constexpr int64_t kMaxExpansion = int64_t{1} << 26;
    if (numel > available + kMaxExpansion)
      bad(fmt::format("size {} holds {} elements, far more than its storage's {}",
                      shape_str(r.size), numel, available));
    // Views of one storage can each claim all of it: the total output is bounded by the input
    // (a small file must not expand into gigabytes by repeating one view).
    const int64_t out_bytes = numel * static_cast<int64_t>(dtype_size(t.out));
    if (out_bytes > output_budget_)
      bad(fmt::format("size {} would bring the tensors read to more than {}x the storages' "
                      "bytes (views that overlap far too much: damaged or hostile file)",
                      shape_str(r.size), kBudgetFactor));
    output_budget_ -= out_bytes;
    Tensor out = Tensor::empty(r.size, t.out);
    if (numel == 0) return out;
    if (r.offset >= available || s.view_offset >= available - r.offset)
      bad(fmt::format("offset {} + {} is past the end of a storage of {} elements (truncated or "
                      "damaged file)",
                      s.view_offset, r.offset, available));
    const int64_t base = s.view_offset + r.offset;
    int64_t last = base;
    if (base >= available)
      bad(fmt::format("offset {} is past the end of a storage of {} elements (truncated or "
                      "damaged file)",
                      base, available));
    for (size_t d = 0; d < r.size.size(); ++d) {
      if (r.stride[d] > 0 && r.size[d] - 1 > (available - 1 - last) / r.stride[d])
        bad(fmt::format("size {}, stride {} and offset {} reach past the end of a storage of "
                        "{} elements (truncated or damaged file)",
                        shape_str(r.size), shape_str(r.stride), base, available));
      last += (r.size[d] - 1) * r.stride[d];
    }
    if (t.conv != Conv::same) info.converted.push_back(name);

    char* dst = static_cast<char*>(out.raw_data());
    const size_t out_elem = dtype_size(t.out);
    const int nd = static_cast<int>(r.size.size());
    bool contiguous = true;
    for (int64_t d = nd - 1, expect = 1; d >= 0; --d) {
      if (r.size[d] != 1 && r.stride[d] != expect) contiguous = false;
      expect *= r.size[d];
    }
    if (contiguous && t.conv == Conv::same) {
      std::memcpy(dst, bytes.data() + base * t.elem, numel * t.elem);
      return out;
    }
    // Odometer over the multi-index, in row-major order of the output.
    std::vector<int64_t> idx(nd, 0);
    int64_t src = base;
    for (int64_t k = 0; k < numel; ++k) {
      convert_one(t, bytes.data(), src, dst + k * out_elem);
      for (int d = nd - 1; d >= 0; --d) {
        if (++idx[d] < r.size[d]) {
          src += r.stride[d];
          break;
        }
        src -= (r.size[d] - 1) * r.stride[d];
        idx[d] = 0;
      }
    }
    return out;
  }

  static bool is_tensor_dict(const Ref& v) {
    if (v->kind != Kind::dict || v->entries.empty()) return false;
    for (const auto& [k, x] : v->entries)
      if (k->kind != Kind::string || x->kind != Kind::tensor) return false;
    return true;
  }

  void set_output_budget() {
    int64_t stored = 0;
    for (const auto& [key, bytes] : storages_) stored += static_cast<int64_t>(bytes.size());
    output_budget_ = kBudgetFactor * stored + kBudgetSlack;
  }

  TensorMap state_dict(const Ref& root, PthInfo& info) {
    set_output_budget();
    Ref sd;
    if (is_tensor_dict(root)) {
      sd = root;
    } else if (root->kind == Kind::dict) {
      for (const char* key : {"state_dict", "model_state_dict", "model", "net", "network"}) {
        const Ref* v = root->get(key);
        if (v && is_tensor_dict(*v)) {
          sd = *v;
          info.wrapper_key = key;
          break;
        }
      }
    }
    if (!sd) {
      std::string what = pickle::describe(root);
      if (root->kind == Kind::dict) {
        what += " {";
        size_t shown = 0;
        for (const auto& [k, v] : root->entries) {
          if (shown++ == 8) {
            what += ", ...";
            break;
          }
          what += fmt::format("{}{}: {}", shown > 1 ? ", " : "", pickle::describe(k),
                              pickle::describe(v));
        }
        what += "}";
      }
      fail("{}: expected a state dict (a dict of str -> tensor) or a dict holding one under "
           "'state_dict', 'model_state_dict', 'model', 'net' or 'network'; found {}",
           src_, what);
    }
    bool all_prefixed = true;
    for (const auto& [k, v] : sd->entries) all_prefixed &= k->str.starts_with("module.");
    info.stripped_module_prefix = all_prefixed;
    TensorMap out;
    for (const auto& [k, v] : sd->entries) {
      std::string name = all_prefixed ? k->str.substr(7) : k->str;
      out[name] = materialize(k->str, v->tensor, info);
    }
    return out;
  }

  // Output allowance: shared views (tied weights, q/k/v slices) and dtype widening stay far
  // below 8x the storages; broadcast (stride-0) tensors get the slack.
  static constexpr int64_t kBudgetFactor = 8;
  static constexpr int64_t kBudgetSlack = int64_t{1} << 28;

  std::string_view bytes_;
  std::string src_;
  int64_t output_budget_ = 0;
  std::map<std::string, std::string> types_;              // storage key -> type name
  std::map<std::string, std::string> owned_;              // zip: decompressed entries
  std::map<std::string, std::string_view> storages_;      // storage key -> bytes
};

}  // namespace

TensorMap decode_pth(std::string_view bytes, const std::string& source, PthInfo* info) {
  PthInfo local;
  return Loader(bytes, source).run(info ? *info : local);
}

TensorMap load_pth(const std::string& path, PthInfo* info) {
  return reading_file(path, "PyTorch checkpoint", [&] {
    check_input_file(path, "PyTorch checkpoint");
    std::string bytes = read_file(path, "PyTorch checkpoint");
    return decode_pth(bytes, path, info);
  });
}

}  // namespace mq
