#pragma once
// A strict, non-executing reader of the pickle subset that torch.save uses for state dicts.
// It builds a small value tree (None, bool, int, float, str, tuple, list, dict) plus the two
// PyTorch objects a state dict holds: storage references (from persistent ids) and tensors
// (from torch._utils._rebuild_tensor_v2). Only whitelisted globals are accepted and none is ever
// called; any other opcode or global is an mq::Error naming the source, offset and opcode.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/shape.h"

namespace mq::pickle {

struct Value;
using Ref = std::shared_ptr<Value>;

enum class Kind : uint8_t {
  none,
  boolean,
  integer,   // fits int64
  big_int,   // LONG1 beyond 64 bits: little-endian two's complement bytes in `str`
  floating,
  string,    // str (and Python 2 byte strings)
  tuple,
  list,
  dict,      // dict and collections.OrderedDict, insertion-ordered
  global,    // a whitelisted global, "module name" in `str`
  storage,   // a storage reference built by the persistent-load hook
  tensor,    // a tensor built by _rebuild_tensor(_v2)
};
const char* kind_name(Kind k);

struct StorageRef {
  std::string type;      // "Float", "Double", "Half", "Long", ... (torch.<type>Storage)
  std::string key;       // the storage's key in the file
  std::string location;  // "cpu", "cuda:0", ...
  int64_t numel = 0;     // elements, as the persistent id says
  int64_t view_offset = 0;  // legacy storage views: elements into the root storage
};

struct TensorRef {
  Ref storage;  // Kind::storage
  int64_t offset = 0;  // elements
  Shape size, stride;
};

struct Value {
  Kind kind = Kind::none;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string str;
  std::vector<Ref> items;                      // tuple, list
  std::vector<std::pair<Ref, Ref>> entries;    // dict
  StorageRef storage;
  TensorRef tensor;
  uint32_t depth = 0;   // nesting depth, bounded to keep destruction and walks shallow
  bool frozen = false;  // placed in a container: may no longer change (no cycles)

  const Ref* get(std::string_view key) const;  // dict lookup by string key
};

Ref make(Kind k);
Ref make_int(int64_t v);
Ref make_string(std::string s);

// The result of a persistent load: the persistent id (a tuple) in, a value out.
using PersistentLoad = std::function<Ref(const Ref& pid, size_t offset)>;

struct Result {
  Ref value;
  size_t end = 0;  // offset just past the STOP opcode
};

// Unpickles one object from bytes[start...]. `source` names the data in error messages
// ("model.pth:archive/data.pkl").
Result unpickle(std::string_view bytes, size_t start, const std::string& source,
                const PersistentLoad& persistent_load);

// "tensor f32..." style one-line description for messages.
std::string describe(const Ref& v);

}  // namespace mq::pickle
