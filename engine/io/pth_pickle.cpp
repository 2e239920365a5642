#include "engine/io/pth_pickle.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>

#include "kernels/base/error.h"

namespace mq::pickle {
namespace {

constexpr uint32_t kMaxDepth = 64;  // state dicts nest 3-5 deep
// Work and memory bounds, far above what a state dict needs (some 30 operations per tensor, a
// stack of a few dozen values): every operation creates at most one value, so these bound the
// values, the stack, the marks and the memo of any input.
constexpr uint64_t kMaxOps = uint64_t{1} << 23;
constexpr size_t kMaxStack = size_t{1} << 20;
constexpr size_t kMaxMemo = size_t{1} << 22;

// Every opcode of pickle protocols 0-5, for error messages; the reader implements a subset.
struct OpName {
  uint8_t code;
  const char* name;
};
constexpr OpName kOpNames[] = {
    {'(', "MARK"},          {'.', "STOP"},           {'0', "POP"},
    {'1', "POP_MARK"},      {'2', "DUP"},            {'F', "FLOAT"},
    {'I', "INT"},           {'J', "BININT"},         {'K', "BININT1"},
    {'L', "LONG"},          {'M', "BININT2"},        {'N', "NONE"},
    {'P', "PERSID"},        {'Q', "BINPERSID"},      {'R', "REDUCE"},
    {'S', "STRING"},        {'T', "BINSTRING"},      {'U', "SHORT_BINSTRING"},
    {'V', "UNICODE"},       {'X', "BINUNICODE"},     {'a', "APPEND"},
    {'b', "BUILD"},         {'c', "GLOBAL"},         {'d', "DICT"},
    {'}', "EMPTY_DICT"},    {'e', "APPENDS"},        {'g', "GET"},
    {'h', "BINGET"},        {'i', "INST"},           {'j', "LONG_BINGET"},
    {'l', "LIST"},          {']', "EMPTY_LIST"},     {'o', "OBJ"},
    {'p', "PUT"},           {'q', "BINPUT"},         {'r', "LONG_BINPUT"},
    {'s', "SETITEM"},       {'t', "TUPLE"},          {')', "EMPTY_TUPLE"},
    {'u', "SETITEMS"},      {'G', "BINFLOAT"},       {0x80, "PROTO"},
    {0x81, "NEWOBJ"},       {0x82, "EXT1"},          {0x83, "EXT2"},
    {0x84, "EXT4"},         {0x85, "TUPLE1"},        {0x86, "TUPLE2"},
    {0x87, "TUPLE3"},       {0x88, "NEWTRUE"},       {0x89, "NEWFALSE"},
    {0x8a, "LONG1"},        {0x8b, "LONG4"},         {'B', "BINBYTES"},
    {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"},
    {0x8e, "BINBYTES8"},    {0x8f, "EMPTY_SET"},     {0x90, "ADDITEMS"},
    {0x91, "FROZENSET"},    {0x92, "NEWOBJ_EX"},     {0x93, "STACK_GLOBAL"},
    {0x94, "MEMOIZE"},      {0x95, "FRAME"},         {0x96, "BYTEARRAY8"},
    {0x97, "NEXT_BUFFER"},  {0x98, "READONLY_BUFFER"},
};

const char* op_name(uint8_t code) {
  for (const OpName& o : kOpNames)
    if (o.code == code) return o.name;
  return "not a pickle opcode";
}

// Globals a state-dict pickle may name. They are markers interpreted by REDUCE, never called.
constexpr const char* kStorageTypes[] = {"Float", "Double", "Half", "BFloat16", "Long", "Int",
                                         "Short", "Char",  "Byte", "Bool", "ComplexFloat",
                                         "ComplexDouble"};
constexpr const char* kOrderedDict = "collections OrderedDict";
constexpr const char* kRebuildV2 = "torch._utils _rebuild_tensor_v2";
constexpr const char* kRebuild = "torch._utils _rebuild_tensor";
constexpr const char* kRebuildParam = "torch._utils _rebuild_parameter";
constexpr const char* kRebuildParamState = "torch._utils _rebuild_parameter_with_state";

bool allowed_global(const std::string& g) {
  if (g == kOrderedDict || g == kRebuildV2 || g == kRebuild || g == kRebuildParam ||
      g == kRebuildParamState)
    return true;
  for (const char* t : kStorageTypes)
    if (g == std::string("torch ") + t + "Storage") return true;
  return false;
}

class Machine {
 public:
  Machine(std::string_view bytes, size_t start, const std::string& source,
          const PersistentLoad& persistent_load)
      : b_(bytes), pos_(start), src_(source), persistent_load_(persistent_load) {}

  Result run();

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail("{}: pickle offset {}, opcode 0x{:02x} ({}): {}", src_, op_pos_, op_, op_name(op_),
         what);
  }
  void need(uint64_t n) const {
    if (n > b_.size() - pos_)
      bad(fmt::format("needs {} more bytes but the data ends at offset {} (truncated file?)", n,
                      b_.size()));
  }
  uint64_t read_le(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(b_[pos_ + k])) << (8 * k);
    pos_ += n;
    return v;
  }
  std::string read_bytes(uint64_t n) {
    need(n);
    std::string s(b_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::string read_line() {
    size_t nl = b_.find('\n', pos_);
    if (nl == std::string_view::npos || nl - pos_ > 256) bad("unterminated or overlong line");
    std::string s(b_.substr(pos_, nl - pos_));
    pos_ = nl + 1;
    return s;
  }

  // ---- stack ----
  void push(Ref v) {
    if (stack_.size() >= kMaxStack) bad(fmt::format("more than {} values on the stack", kMaxStack));
    stack_.push_back(std::move(v));
  }
  void memo_put(uint64_t idx) {
    if (memo_.size() >= kMaxMemo && !memo_.count(idx))
      bad(fmt::format("more than {} memo entries", kMaxMemo));
    memo_[idx] = top();
  }
  Ref pop() {
    if (stack_.size() <= floor()) bad("stack underflow");
    Ref v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Ref& top() {
    if (stack_.size() <= floor()) bad("stack underflow");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) bad("no MARK on the stack");
    std::vector<Ref> items(std::make_move_iterator(stack_.begin() + marks_.back()),
                           std::make_move_iterator(stack_.end()));
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }

  // ---- containers ----
  // A container may only change before it is placed in another one: this keeps depths exact
  // and rules out reference cycles (which state dicts never have).
  void adopt(Value& parent, const Ref& child) {
    if (child.get() == &parent) bad("a container that contains itself");
    child->frozen = true;
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxDepth) bad(fmt::format("nesting deeper than {}", kMaxDepth));
  }
  void check_mutable(const Value& v) {
    if (v.frozen)
      bad("modifies a container after it was placed in another one");
  }
  Ref make_tuple(std::vector<Ref> items) {
    Ref t = make(Kind::tuple);
    for (const Ref& c : items) adopt(*t, c);
    t->items = std::move(items);
    return t;
  }
  void append(const Ref& list, std::vector<Ref> items) {
    if (list->kind != Kind::list) bad(fmt::format("appends to a {}", kind_name(list->kind)));
    check_mutable(*list);
    for (Ref& c : items) {
      adopt(*list, c);
      list->items.push_back(std::move(c));
    }
  }
  void set_items(const Ref& dict, std::vector<Ref> kv) {
    if (dict->kind != Kind::dict) bad(fmt::format("sets items on a {}", kind_name(dict->kind)));
    if (kv.size() % 2) bad("odd number of keys and values");
    check_mutable(*dict);
    for (size_t k = 0; k < kv.size(); k += 2) {
      adopt(*dict, kv[k]);
      adopt(*dict, kv[k + 1]);
      dict->entries.emplace_back(std::move(kv[k]), std::move(kv[k + 1]));
    }
  }

  Ref global(std::string module, std::string name) {
    std::string g = module + " " + name;
    if (!allowed_global(g))
      bad(fmt::format("global '{}.{}' is not allowed: mq reads only state dicts of tensors and "
                      "never runs code from a checkpoint (re-save it with "
                      "torch.save(model.state_dict(), path))",
                      module, name));
    Ref v = make(Kind::global);
    v->str = std::move(g);
    return v;
  }
  Ref reduce(const Ref& callable, const Ref& args);
  Shape int_tuple(const Ref& v, const char* what);

  std::string_view b_;
  size_t pos_;
  size_t op_pos_ = 0;
  uint8_t op_ = 0;
  const std::string& src_;
  const PersistentLoad& persistent_load_;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Ref> memo_;
};

Shape Machine::int_tuple(const Ref& v, const char* what) {
  if (v->kind != Kind::tuple) bad(fmt::format("{} is a {}, not a tuple", what, kind_name(v->kind)));
  Shape s;
  for (const Ref& x : v->items) {
    if (x->kind != Kind::integer) bad(fmt::format("{} holds a {}", what, kind_name(x->kind)));
    s.push_back(x->i);
  }
  return s;
}

Ref Machine::reduce(const Ref& callable, const Ref& args) {
  if (callable->kind != Kind::global)
    bad(fmt::format("calls a {} (only whitelisted globals may be reduced)",
                    kind_name(callable->kind)));
  if (args->kind != Kind::tuple) bad("REDUCE arguments are not a tuple");
  const std::string& g = callable->str;
  const std::vector<Ref>& a = args->items;
  if (g == kOrderedDict) {
    if (!a.empty()) bad("OrderedDict with constructor arguments is not supported");
    return make(Kind::dict);
  }
  if (g == kRebuildV2 || g == kRebuild) {
    bool v2 = g == kRebuildV2;
    if (v2 ? (a.size() != 6 && a.size() != 7) : a.size() != 4)
      bad(fmt::format("{} with {} arguments", g, a.size()));
    if (a[0]->kind != Kind::storage)
      bad(fmt::format("{} on a {} instead of a storage", g, kind_name(a[0]->kind)));
    if (a[1]->kind != Kind::integer) bad("tensor storage offset is not an integer");
    Ref t = make(Kind::tensor);
    t->tensor.storage = a[0];
    t->tensor.offset = a[1]->i;
    t->tensor.size = int_tuple(a[2], "tensor size");
    t->tensor.stride = int_tuple(a[3], "tensor stride");
    if (v2 && a[4]->kind != Kind::boolean) bad("tensor requires_grad is not a bool");
    return t;
  }
  if (g == kRebuildParam || g == kRebuildParamState) {
    if (a.size() != (g == kRebuildParam ? 3u : 4u) || a[0]->kind != Kind::tensor)
      bad(fmt::format("{} with unexpected arguments", g));
    return a[0];
  }
  bad(fmt::format("global '{}' is not callable", g));
}

Result Machine::run() {
  for (uint64_t ops = 0;; ++ops) {
    op_pos_ = pos_;
    need(1);
    op_ = static_cast<uint8_t>(b_[pos_++]);
    if (ops == kMaxOps)
      bad(fmt::format("more than {} operations: far more than a state dict needs", kMaxOps));
    switch (op_) {
      case 0x80: {  // PROTO
        uint64_t v = read_le(1);
        if (v > 5) bad(fmt::format("unsupported pickle protocol {}", v));
        break;
      }
      case 0x95: {  // FRAME: a length hint only
        need(read_le(8));
        break;
      }
      case '.': {  // STOP
        if (stack_.size() != 1 || !marks_.empty())
          bad(fmt::format("STOP with {} values and {} marks on the stack", stack_.size(),
                          marks_.size()));
        return {stack_.back(), pos_};
      }
      case '(':
        if (marks_.size() >= kMaxStack) bad(fmt::format("more than {} marks", kMaxStack));
        marks_.push_back(stack_.size());
        break;
      case '0': pop(); break;
      case '1': pop_mark(); break;
      case '2': push(top()); break;
      case 'N': push(make(Kind::none)); break;
      case 0x88:
      case 0x89: {
        Ref v = make(Kind::boolean);
        v->b = op_ == 0x88;
        push(v);
        break;
      }
      case 'K': push(make_int(static_cast<int64_t>(read_le(1)))); break;
      case 'M': push(make_int(static_cast<int64_t>(read_le(2)))); break;
      case 'J': push(make_int(static_cast<int32_t>(static_cast<uint32_t>(read_le(4))))); break;
      case 0x8a: {  // LONG1
        uint64_t n = read_le(1);
        if (n <= 8) {
          uint64_t v = n ? read_le(n) : 0;
          if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign
          push(make_int(static_cast<int64_t>(v)));
        } else {
          Ref v = make(Kind::big_int);
          v->str = read_bytes(n);
          push(v);
        }
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        need(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<uint8_t>(b_[pos_ + k]);
        pos_ += 8;
        Ref v = make(Kind::floating);
        std::memcpy(&v->f, &bits, 8);
        push(v);
        break;
      }
      case 0x8c: push(make_string(read_bytes(read_le(1)))); break;  // SHORT_BINUNICODE
      case 'X': push(make_string(read_bytes(read_le(4)))); break;   // BINUNICODE
      case 0x8d: push(make_string(read_bytes(read_le(8)))); break;  // BINUNICODE8
      case 'U': push(make_string(read_bytes(read_le(1)))); break;   // SHORT_BINSTRING (py2)
      case 'T': {                                                   // BINSTRING (py2)
        int32_t n = static_cast<int32_t>(static_cast<uint32_t>(read_le(4)));
        if (n < 0) bad("negative string length");
        push(make_string(read_bytes(static_cast<uint64_t>(n))));
        break;
      }
      case ')': push(make(Kind::tuple)); break;
      case 't': push(make_tuple(pop_mark())); break;
      case 0x85:
      case 0x86:
      case 0x87: {
        size_t n = op_ - 0x84u;
        if (stack_.size() < floor() + n) bad("stack underflow");
        std::vector<Ref> items(std::make_move_iterator(stack_.end() - n),
                               std::make_move_iterator(stack_.end()));
        stack_.resize(stack_.size() - n);
        push(make_tuple(std::move(items)));
        break;
      }
      case ']': push(make(Kind::list)); break;
      case 'l': {
        std::vector<Ref> items = pop_mark();
        Ref l = make(Kind::list);
        append(l, std::move(items));
        push(l);
        break;
      }
      case '}': push(make(Kind::dict)); break;
      case 'd': {
        std::vector<Ref> kv = pop_mark();
        Ref d = make(Kind::dict);
        set_items(d, std::move(kv));
        push(d);
        break;
      }
      case 'a': {
        Ref v = pop();
        append(top(), {v});
        break;
      }
      case 'e': {
        std::vector<Ref> items = pop_mark();
        append(top(), std::move(items));
        break;
      }
      case 's': {
        Ref v = pop(), k = pop();
        set_items(top(), {k, v});
        break;
      }
      case 'u': {
        std::vector<Ref> kv = pop_mark();
        set_items(top(), std::move(kv));
        break;
      }
      case 'q': memo_put(read_le(1)); break;  // BINPUT
      case 'r': memo_put(read_le(4)); break;  // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
      case 'h':
      case 'j': {  // BINGET, LONG_BINGET
        uint64_t idx = read_le(op_ == 'h' ? 1 : 4);
        auto it = memo_.find(idx);
        if (it == memo_.end()) bad(fmt::format("memo entry {} was never stored", idx));
        push(it->second);
        break;
      }
      case 'c': {  // GLOBAL "module\nname\n"
        std::string module = read_line();
        std::string name = read_line();
        push(global(std::move(module), std::move(name)));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Ref name = pop(), module = pop();
        if (name->kind != Kind::string || module->kind != Kind::string)
          bad("STACK_GLOBAL needs two strings");
        push(global(module->str, name->str));
        break;
      }
      case 'Q': {  // BINPERSID
        Ref pid = pop();
        Ref v = persistent_load_(pid, op_pos_);
        push(v);
        break;
      }
      case 'R': {  // REDUCE
        Ref args = pop(), callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'b': {  // BUILD: only the attribute dict of an OrderedDict (state_dict's _metadata)
        Ref state = pop();
        Ref& obj = top();
        if (obj->kind != Kind::dict || (state->kind != Kind::dict && state->kind != Kind::none))
          bad(fmt::format("BUILD of a {} from a {} (only an OrderedDict's attributes are "
                          "supported)",
                          kind_name(obj->kind), kind_name(state->kind)));
        break;
      }
      default:
        bad("unsupported opcode: mq reads only the pickle subset torch.save uses for state "
            "dicts");
    }
  }
}

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::none: return "None";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::big_int: return "big int";
    case Kind::floating: return "float";
    case Kind::string: return "str";
    case Kind::tuple: return "tuple";
    case Kind::list: return "list";
    case Kind::dict: return "dict";
    case Kind::global: return "global";
    case Kind::storage: return "storage";
    case Kind::tensor: return "tensor";
  }
  return "?";
}

const Ref* Value::get(std::string_view key) const {
  for (auto it = entries.rbegin(); it != entries.rend(); ++it)  // the last assignment wins
    if (it->first->kind == Kind::string && it->first->str == key) return &it->second;
  return nullptr;
}

Ref make(Kind k) {
  Ref v = std::make_shared<Value>();
  v->kind = k;
  return v;
}
Ref make_int(int64_t i) {
  Ref v = make(Kind::integer);
  v->i = i;
  return v;
}
Ref make_string(std::string s) {
  Ref v = make(Kind::string);
  v->str = std::move(s);
  return v;
}

Result unpickle(std::string_view bytes, size_t start, const std::string& source,
                const PersistentLoad& persistent_load) {
  MQ_CHECK(start <= bytes.size(), "{}: pickle start {} is past the end", source, start);
  return Machine(bytes, start, source, persistent_load).run();
}

std::string describe(const Ref& v) {
  switch (v->kind) {
    case Kind::integer: return fmt::format("int {}", v->i);
    case Kind::floating: return fmt::format("float {}", v->f);
    case Kind::string: return fmt::format("str '{}'", v->str.substr(0, 40));
    case Kind::tuple:
    case Kind::list: return fmt::format("{} of {}", kind_name(v->kind), v->items.size());
    case Kind::dict: return fmt::format("dict of {}", v->entries.size());
    case Kind::tensor:
      return fmt::format("tensor {}{}", v->tensor.storage->storage.type, shape_str(v->tensor.size));
    default: return kind_name(v->kind);
  }
}

}  // namespace mq::pickle
