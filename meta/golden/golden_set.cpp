// Loading a golden set (meta/golden/golden.h): the manifest, every field range-checked, the inputs, and
// the checks of a case's tensor files against the model and meta network it replays. A golden
// directory may come from anyone: every problem is one mq::Error naming the file and the field.
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/io/input_file.h"
#include "engine/io/file.h"
#include "engine/io/npy.h"
#include "engine/optim/optimizer.h"
#include "kernels/base/text.h"
#include "kernels/quantize/quantizer_table.h"
#include "meta/golden/golden.h"
#include "meta/run/training_run.h"
#include "meta/quantized_layers.h"
#include "models/zoo.h"

namespace mq::golden {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Runs f; an exception other than mq::Error (std::filesystem, bad_alloc, the JSON library)
// becomes one mq::Error that starts with `what`.
template <class F>
auto contained(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("{}: {}", what, e.what());
  }
}

// One field of the manifest: the file, its path in the JSON ("cases[3].bitW") and its value
// (null when absent). Every message names both.
struct Field {
  const std::string& file;
  std::string name;
  const json* value;

  [[noreturn]] void bad(std::string_view expected) const {
    std::string got = "nothing (the field is missing)";
    if (value && value->is_array()) {
      got = fmt::format("an array of {} elements", value->size());
    } else if (value && value->is_object()) {
      got = "an object";  // not dumped: its nesting may be deep, dump() recurses
    } else if (value) {
      got = value->dump(-1, ' ', false, json::error_handler_t::replace);
      if (got.size() > 60) got = got.substr(0, 57) + "...";
    }
    fail("{}: field '{}' must be {}, got {}", file, name, expected, got);
  }
  // Runs a parser of the engine (parse_meta_kind, ...) whose message lacks the file and field.
  template <class F>
  auto parsed(F&& f) const -> decltype(f()) {
    try {
      return f();
    } catch (const Error& e) {
      fail("{}: field '{}': {}", file, name, e.what());
    }
  }
};

Field field(const std::string& file, const json& object, const std::string& prefix,
            const char* key) {
  auto it = object.find(key);
  return {file, prefix + key, it == object.end() ? nullptr : &*it};
}

int64_t int_in(const Field& f, int64_t lo, int64_t hi) {
  const std::string expected = fmt::format("an integer in {}..{}", lo, hi);
  if (!f.value || !f.value->is_number_integer()) f.bad(expected);
  if (f.value->is_number_unsigned() && f.value->get<uint64_t>() > static_cast<uint64_t>(hi))
    f.bad(expected);
  const int64_t v = f.value->get<int64_t>();
  if (v < lo || v > hi) f.bad(expected);
  return v;
}

double positive_number(const Field& f) {
  if (!f.value || !f.value->is_number()) f.bad("a positive number");
  const double v = f.value->get<double>();
  if (!std::isfinite(v) || v <= 0) f.bad("a positive number");
  return v;
}

// A string, or "" for null / absent when `nullable`.
std::string string_of(const Field& f, bool nullable) {
  if (nullable && (!f.value || f.value->is_null())) return {};
  if (!f.value || !f.value->is_string()) f.bad(nullable ? "a string or null" : "a string");
  return f.value->get<std::string>();
}

// The meta network's materialized width per weight element (its hidden activations), which
// sets the replay's memory: about 270k weights x this x 4 bytes.
int64_t meta_width(const MetaNetConfig& cfg) {
  switch (cfg.kind) {
    case MetaKind::multi_fc: return cfg.hidden * cfg.num_fc;
    case MetaKind::fc_grad: return cfg.hidden * 2;
    default: return cfg.hidden * 6;  // LSTM gates (4 h) and its state (h, c)
  }
}

Case read_case(const std::string& path, const json& c, size_t index, const Set& s) {
  const std::string at = fmt::format("cases[{}].", index);
  MQ_CHECK(c.is_object(), "{}: field 'cases[{}]' must be an object", path, index);
  Case k;
  k.name = string_of(field(path, c, at, "name"), false);
  check_plain_name(k.name, fmt::format("{}: field '{}name' (a golden case name, the case's folder)",
                                       path, at));
  for (const char* taken : {"init", "manifest.json", "inputs_x.npy", "inputs_y.npy"})
    MQ_CHECK(k.name != taken, "{}: field '{}name': '{}' names a file or folder of the set itself, "
             "not a case folder", path, at, k.name);
  const std::string named = fmt::format("cases[{}] ('{}').", index, k.name);
  k.mode = string_of(field(path, c, named, "mode"), false);
  if (k.mode != "fp" && k.mode != "ste" && k.mode != "metaquant")
    field(path, c, named, "mode").bad("one of fp, ste, metaquant");
  const bool quantized = k.mode != "fp";

  const Field quantize = field(path, c, named, "quantize");
  k.quantize = string_of(quantize, true);
  if (!quantized && !k.quantize.empty()) quantize.bad("null (an fp case is not quantized)");
  if (quantized && !kernels::find_quantizer(k.quantize))
    quantize.bad("one of " + kernels::quantizer_names());

  const Field optimizer = field(path, c, named, "optimizer");
  k.optimizer = string_of(optimizer, false);
  // The README's two; the tolerances (Rule) and adam_weight_decay are defined for these.
  if (k.optimizer != "SGD" && k.optimizer != "Adam") optimizer.bad("SGD or Adam");

  const Field meta = field(path, c, named, "meta");
  k.meta = string_of(meta, true);
  if (k.mode == "metaquant") {
    if (k.meta.empty()) meta.bad("FC-Grad, MultiFC or LSTMFC (a metaquant case has a meta network)");
    const MetaNetConfig cfg{meta.parsed([&] { return parse_meta_kind(k.meta); }), s.hidden,
                            s.num_fc, MetaAct::none};
    MQ_CHECK(meta_width(cfg) <= kMaxMetaWidth,
             "{}: case '{}': a {} meta network with hidden {} and num_fc {} keeps {} activations "
             "per weight, more than the {} a golden replay allows (golden sets are short "
             "reference runs; the shipped one keeps at most 600)",
             path, k.name, k.meta, s.hidden, s.num_fc, meta_width(cfg), kMaxMetaWidth);
  } else if (!k.meta.empty()) {
    meta.bad("null (only metaquant cases have a meta network)");
  }

  const Field bits = field(path, c, named, "bitW");
  if (quantized) {
    const kernels::QuantizerInfo& q = *kernels::find_quantizer(k.quantize);
    k.bit_w = static_cast<int>(int_in(bits, q.min_bits, q.max_bits));
  } else if (bits.value) {
    k.bit_w = static_cast<int>(int_in(bits, 1, 1));  // read, so it must be the unquantized 1
  }

  const Field losses = field(path, c, named, "losses");
  if (!losses.value || !losses.value->is_array() ||
      losses.value->size() != static_cast<size_t>(s.steps))
    losses.bad(fmt::format("an array of {} losses (one per step)", s.steps));
  for (size_t i = 0; i < losses.value->size(); ++i) {
    const Field one{path, fmt::format("{}losses[{}]", named, i), &(*losses.value)[i]};
    k.losses.push_back(positive_number(one));  // a cross-entropy: finite and > 0
  }
  return k;
}

json parse_manifest(const std::string& path) {
  const uint64_t size =
      input_file_size(path, "golden manifest", "is the golden data directory right?");
  constexpr uint64_t kMaxManifestBytes = 16 << 20;  // the shipped one has 6 KB
  MQ_CHECK(size <= kMaxManifestBytes, "{}: {} bytes is too large for a golden manifest (at most "
           "{}; it lists settings and cases)", path, size, kMaxManifestBytes);
  const std::string text = read_file(path, "golden manifest");
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: the golden manifest is not valid JSON ({})", path, e.what());
  }
}

Tensor load_input(const std::string& dir, const char* file) {
  const std::string path = (fs::path(dir) / file).string();
  input_file_size(path, "golden input file");
  return contained(path, [&] { return load_npy(path); });
}

Set load_set_checked(const std::string& dir) {
  const PathCheck d = check_directory(dir);
  MQ_CHECK(d.ok(), "{}: the golden data directory {} (it holds manifest.json, inputs_x.npy, "
           "inputs_y.npy, init/ and a folder per case)", dir, d.problem);
  const std::string path = (fs::path(dir) / "manifest.json").string();
  const json j = parse_manifest(path);
  MQ_CHECK(j.is_object(), "{}: the golden manifest must be a JSON object", path);
  Set s;
  s.dir = dir;
  // The ranges of mqtrain's flags (meta/run/training_run.h); the work they imply is bounded
  // by the inputs' size and, for the meta network, by kMaxMetaWidth below.
  const Field model = field(path, j, "", "model");
  s.model = golden_model_name(string_of(model, false));
  MQ_CHECK(has_model(s.model), "{}: field 'model': '{}' is not a model of this program's zoo ({}); "
           "a set recorded on your own model is replayed by the program that registers it "
           "(docs/custom-models.md)", path, s.model, model_list());
  const Field listed = field(path, j, "", "quantized_layers");
  if (listed.value && !listed.value->is_null()) {
    if (!listed.value->is_array() || listed.value->size() > 100000)
      listed.bad("an array of layer names");
    for (size_t i = 0; i < listed.value->size(); ++i)
      s.quantized_layers.push_back(string_of(
          Field{path, fmt::format("quantized_layers[{}]", i), &(*listed.value)[i]}, false));
  }
  s.lr = positive_number(field(path, j, "", "lr"));
  s.meta_lr = positive_number(field(path, j, "", "meta_lr"));
  s.hidden = static_cast<int>(int_in(field(path, j, "", "hidden"), 1, kMaxHidden));
  s.num_fc = static_cast<int>(int_in(field(path, j, "", "num_fc"), kMinNumFc, kMaxNumFc));
  s.batch = static_cast<int>(int_in(field(path, j, "", "batch"), 1, 65536));
  s.steps = static_cast<int>(int_in(field(path, j, "", "steps"), 1, 100000));
  // The engine's MetaQuant Adam refinement uses the reference's fixed weight decay
  // (docs/metaquant.md §6.10); a set recorded with another cannot be replayed.
  const Field wd = field(path, j, "", "adam_weight_decay");
  if (!wd.value || !wd.value->is_number() ||
      std::abs(wd.value->get<double>() - kMetaQuantWeightDecay) > 1e-9 * kMetaQuantWeightDecay)
    wd.bad(fmt::format("{} (the weight decay of MetaQuant's Adam refinement, fixed in the engine "
                       "as in the reference, docs/metaquant.md §6.10)",
                       kMetaQuantWeightDecay));
  s.adam_weight_decay = kMetaQuantWeightDecay;
  const Field act = field(path, j, "", "meta_nonlinear");
  s.meta_nonlinear = string_of(act, true);
  act.parsed([&] { return parse_meta_act(s.meta_nonlinear); });

  const Field cases = field(path, j, "", "cases");
  if (!cases.value || !cases.value->is_array() || cases.value->empty())
    cases.bad("a non-empty array of cases");
  std::set<std::string> names;
  for (size_t i = 0; i < cases.value->size(); ++i) {
    Case k = read_case(path, (*cases.value)[i], i, s);
    MQ_CHECK(names.insert(k.name).second, "{}: case name '{}' appears twice", path, k.name);
    s.cases.push_back(std::move(k));
  }

  s.inputs_x = load_input(dir, "inputs_x.npy");
  s.inputs_y = load_input(dir, "inputs_y.npy");
  const Shape& x = s.inputs_x.shape();
  MQ_CHECK(s.inputs_x.dim() == 5 && x[0] >= s.steps && x[1] == s.batch && x[2] == 3 &&
               x[3] == 32 && x[4] == 32 && s.inputs_x.dtype() == DType::f32,
           "{}/inputs_x.npy: expected f32 [steps={}, batch={}, 3, 32, 32], got {}", dir, s.steps,
           s.batch, s.inputs_x.describe());
  const Shape& y = s.inputs_y.shape();
  MQ_CHECK(s.inputs_y.dim() == 2 && y[0] >= s.steps && y[1] == s.batch &&
               s.inputs_y.dtype() == DType::i64,
           "{}/inputs_y.npy: expected i64 [steps={}, batch={}], got {}", dir, s.steps, s.batch,
           s.inputs_y.describe());
  const std::vector<int64_t> labels = s.inputs_y.to_vector<int64_t>();
  for (size_t i = 0; i < labels.size(); ++i)
    MQ_CHECK(labels[i] >= 0 && labels[i] < kClasses,
             "{}/inputs_y.npy: label {} at flat index {} is outside 0..{}", dir, labels[i], i,
             kClasses - 1);
  return s;
}

// Every file `<dir>/<prefix><name>.npy`; a missing folder or one that cannot be listed (a
// symbolic-link loop) is an error naming it.
std::map<std::string, Tensor> load_tensors(const std::string& dir, const std::string& prefix) {
  const PathCheck d = check_directory(dir);
  MQ_CHECK(d.ok(), "{}: the golden folder {}", dir, d.problem);
  return contained(fmt::format("{}: cannot read the golden tensors {}*.npy", dir, prefix),
                   [&] { return load_npy_dir(dir, prefix); });
}

// Copies row `step` of a [steps, ...] tensor (the inputs are small; a copy keeps it simple).
Tensor row(const Tensor& all, int step, const char* what) {
  MQ_CHECK(step >= 0 && step < all.size(0), "golden: {} has no step {} (it holds {})", what,
           step, all.size(0));
  Shape shape(all.shape().begin() + 1, all.shape().end());
  Tensor out = Tensor::empty(shape, all.dtype());
  size_t bytes = out.nbytes();
  std::memcpy(out.raw_data(), static_cast<const char*>(all.raw_data()) + bytes * step, bytes);
  return out;
}

const char* what_prefix_holds(const std::string& prefix) {
  if (prefix == "final.") return "every float tensor of the model's final state";
  if (prefix == "step1.grad.") return "every parameter's first-step gradient";
  if (prefix == "meta_init.") return "every tensor of the initial meta network";
  return "every tensor of the final meta network";
}

// The files of one prefix against `expected` (stems "<prefix><name>" -> shape): each expected
// tensor present with its shape and a float dtype, nothing else with the prefix.
void check_files(const Set& set, const Case& c, const std::string& prefix,
                 const std::map<std::string, Shape>& expected) {
  const std::string dir = (fs::path(set.dir) / c.name).string();
  const std::map<std::string, Tensor> files = load_tensors(dir, prefix);
  for (const auto& [stem, shape] : expected) {
    if (stem.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string name = stem.substr(prefix.size());
    const std::string file = fmt::format("{}/{}.npy", dir, stem);
    auto it = files.find(name);
    MQ_CHECK(it != files.end(), "{}: missing: case '{}' compares {} (a golden file for each)",
             file, c.name, what_prefix_holds(prefix));
    MQ_CHECK(it->second.shape() == shape && is_floating(it->second.dtype()),
             "{}: {}, but the case's {} is float {}", file, it->second.describe(), name,
             shape_str(shape));
  }
  for (const auto& [name, t] : files) {
    // The reference's second name of a weight (kReferenceWeightAlias): optional, shaped like
    // the weight, quantized cases only.
    const std::string_view suffix = kReferenceWeightAlias;
    if (c.mode != "fp" && name.size() > suffix.size() && name.ends_with(suffix)) {
      const std::string weight = prefix + name.substr(0, name.size() - suffix.size()) + ".weight";
      auto w = expected.find(weight);
      MQ_CHECK(w != expected.end() && w->second == t.shape(), "{}/{}{}.npy: {}, but case '{}' has "
               "no weight {} of that shape for it to alias", dir, prefix, name, t.describe(),
               c.name, weight.substr(prefix.size()));
      continue;
    }
    MQ_CHECK(expected.count(prefix + name), "{}/{}{}.npy: case '{}' has no tensor '{}' (a golden "
             "file of another model?)", dir, prefix, name, c.name, name);
  }
}

void add_float_shapes(std::map<std::string, Shape>& m, const std::string& prefix,
                      const NamedTensors& named) {
  for (const auto& [name, t] : named)
    if (is_floating(t.dtype())) m.emplace(prefix + name, t.shape());
}

}  // namespace

std::string golden_model_name(const std::string& text) {
  size_t end = 0;
  while (end < text.size() && end < 64 &&
         (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '-' ||
          text[end] == '_'))
    ++end;
  return ascii_lower(text.substr(0, end));
}

std::unique_ptr<Model> make_golden_model(const Set& set, const LayerFactory& layers) {
  std::unique_ptr<Model> model =
      make_model(set.model, {.classes = kClasses, .in_channels = 3, .layers = &layers}, 0);
  if (!set.quantized_layers.empty() && &layers != &default_layer_factory()) {
    std::vector<std::string> found;
    for (const auto& l : quantized_layers(*model)) found.push_back(l.name);
    auto join = [](const std::vector<std::string>& v) {
      std::string out;
      for (const auto& n : v) out += (out.empty() ? "" : ", ") + n;
      return out;
    };
    MQ_CHECK(found == set.quantized_layers, "{}/manifest.json: the set quantizes the layers [{}], "
             "but model {} has the quantized layers [{}]", set.dir, join(set.quantized_layers),
             set.model, join(found));
  }
  return model;
}

Set load_set(const std::string& dir) {
  return contained(fmt::format("{}: cannot load the golden set", dir),
                   [&] { return load_set_checked(dir); });
}

MetaNetConfig meta_config(const Set& set, const Case& c) {
  MetaNetConfig cfg;
  cfg.kind = parse_meta_kind(c.meta);
  cfg.hidden = set.hidden;
  cfg.num_fc = set.num_fc;
  cfg.act = parse_meta_act(set.meta_nonlinear);
  return cfg;
}

std::map<std::string, Shape> expected_case_files(const Set& set, const Case& c) {
  const bool quantized = c.mode != "fp";
  std::unique_ptr<QuantizedLayerFactory> qf;
  if (quantized)
    qf = std::make_unique<QuantizedLayerFactory>(QuantSpec{parse_quantizer(c.quantize), c.bit_w});
  const std::unique_ptr<Model> built =
      make_golden_model(set, quantized ? *qf : default_layer_factory());
  const Model& model = *built;
  std::map<std::string, Shape> m;
  add_float_shapes(m, "final.", model.state_dict());
  if (c.mode != "metaquant") m.emplace("step1.logits", Shape{set.batch, kClasses});
  if (c.mode == "fp") add_float_shapes(m, "step1.grad.", model.named_parameters());
  if (c.mode == "metaquant") {
    const MetaNet meta(meta_config(set, c));
    add_float_shapes(m, "meta_init.", meta.state_dict());
    add_float_shapes(m, "meta_final.", meta.state_dict());
  }
  return m;
}

void check_case_files(const Set& set, const Case& c) {
  contained(fmt::format("{}/{}: cannot check the golden case", set.dir, c.name), [&] {
    const std::map<std::string, Shape> expected = expected_case_files(set, c);
    if (expected.count("step1.logits")) {
      const Tensor logits = set.load_one(c, "step1.logits");
      MQ_CHECK(logits.shape() == expected.at("step1.logits") && is_floating(logits.dtype()),
               "{}/{}/step1.logits.npy: {}, but the case's logits are float {}", set.dir, c.name,
               logits.describe(), shape_str(expected.at("step1.logits")));
    }
    for (const char* prefix : {"final.", "step1.grad.", "meta_init.", "meta_final."}) {
      bool wanted = false;
      for (const auto& [stem, shape] : expected) wanted = wanted || stem.rfind(prefix, 0) == 0;
      if (wanted) check_files(set, c, prefix, expected);
    }
  });
}

const Case& Set::find(const std::string& name) const {
  std::string names;
  for (const auto& c : cases) {
    if (c.name == name) return c;
    names += (names.empty() ? "" : ", ") + c.name;
  }
  fail("golden: no case '{}' in {}/manifest.json (cases: {})", name, dir, names);
}

Tensor Set::batch_x(int step) const { return row(inputs_x, step, "inputs_x.npy"); }
Tensor Set::batch_y(int step) const { return row(inputs_y, step, "inputs_y.npy"); }

std::map<std::string, Tensor> Set::init() const {
  return load_tensors((fs::path(dir) / "init").string(), "");
}

std::map<std::string, Tensor> Set::load(const Case& c, const std::string& prefix) const {
  return load_tensors((fs::path(dir) / c.name).string(), prefix);
}

Tensor Set::load_one(const Case& c, const std::string& file) const {
  const std::string path = (fs::path(dir) / c.name / (file + ".npy")).string();
  input_file_size(path, "golden tensor file");
  return contained(path, [&] { return load_npy(path); });
}

}  // namespace mq::golden
