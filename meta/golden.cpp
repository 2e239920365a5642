#include "meta/golden.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "engine/io/npy.h"
#include "engine/ops.h"
#include "engine/optim/optimizer.h"
#include "models/resnet_cifar.h"

namespace mq::golden {
namespace fs = std::filesystem;

namespace {
std::string str_or_empty(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
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
}  // namespace

// ---- Set ----
Set load_set(const std::string& dir) {
  Set s;
  s.dir = dir;
  std::string path = (fs::path(dir) / "manifest.json").string();
  std::ifstream in(path);
  MQ_CHECK(in, "{}: cannot open the golden manifest (is the golden data directory right?)",
           path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
    s.lr = j.at("lr").get<double>();
    s.meta_lr = j.at("meta_lr").get<double>();
    s.hidden = j.at("hidden").get<int>();
    s.num_fc = j.at("num_fc").get<int>();
    s.batch = j.at("batch").get<int>();
    s.steps = j.at("steps").get<int>();
    s.adam_weight_decay = j.at("adam_weight_decay").get<double>();
    s.meta_nonlinear = str_or_empty(j, "meta_nonlinear");
    for (const auto& c : j.at("cases")) {
      Case k;
      k.name = c.at("name").get<std::string>();
      k.mode = c.at("mode").get<std::string>();
      k.quantize = str_or_empty(c, "quantize");
      k.optimizer = c.at("optimizer").get<std::string>();
      k.meta = str_or_empty(c, "meta");
      k.bit_w = c.value("bitW", 1);
      k.losses = c.at("losses").get<std::vector<double>>();
      s.cases.push_back(std::move(k));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed golden manifest: {}", path, e.what());
  }
  s.inputs_x = load_npy((fs::path(dir) / "inputs_x.npy").string());
  s.inputs_y = load_npy((fs::path(dir) / "inputs_y.npy").string());
  MQ_CHECK(s.inputs_x.dim() == 5 && s.inputs_x.size(0) >= s.steps &&
               s.inputs_x.size(1) == s.batch && s.inputs_x.dtype() == DType::f32,
           "{}/inputs_x.npy: expected f32 [steps={}, batch={}, C, H, W], got {}", dir, s.steps,
           s.batch, s.inputs_x.describe());
  MQ_CHECK(s.inputs_y.dim() == 2 && s.inputs_y.size(0) >= s.steps &&
               s.inputs_y.size(1) == s.batch && s.inputs_y.dtype() == DType::i64,
           "{}/inputs_y.npy: expected i64 [steps={}, batch={}], got {}", dir, s.steps, s.batch,
           s.inputs_y.describe());
  return s;
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
  return load_npy_dir((fs::path(dir) / "init").string(), "");
}

std::map<std::string, Tensor> Set::load(const Case& c, const std::string& prefix) const {
  return load_npy_dir((fs::path(dir) / c.name).string(), prefix);
}

Tensor Set::load_one(const Case& c, const std::string& file) const {
  return load_npy((fs::path(dir) / c.name / (file + ".npy")).string());
}

// ---- comparing ----
std::string TensorDiff::str() const {
  if (!problem.empty()) return fmt::format("{}: {}", name, problem);
  return fmt::format("{}: {} max|diff| {:.3g} at [{}] (actual {:.9g}, expected {:.9g}), "
                     "{:.4f}% within 1e-4",
                     name, ok ? "ok" : "FAIL", max_abs, worst_index, actual, expected,
                     100 * frac_within);
}

TensorDiff compare_tensor(const std::string& name, const Tensor& actual, const Tensor& expected,
                          Rule rule) {
  TensorDiff d;
  d.name = name;
  if (!actual.defined()) {
    d.ok = false;
    d.problem = "missing in the engine's state";
    return d;
  }
  if (actual.shape() != expected.shape()) {
    d.ok = false;
    d.problem = fmt::format("shape {} but golden {}", shape_str(actual.shape()),
                            shape_str(expected.shape()));
    return d;
  }
  auto a = actual.to(Device::cpu()).to(DType::f64).to_vector<double>();
  auto b = expected.to(DType::f64).to_vector<double>();
  double worst_excess = -std::numeric_limits<double>::infinity();
  int64_t within = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double diff = std::abs(a[i] - b[i]);
    if (std::isnan(diff)) diff = std::numeric_limits<double>::infinity();
    double bound = rule == Rule::allclose ? kStep1Atol + kStep1Rtol * std::abs(b[i])
                   : rule == Rule::max_abs ? kFinalSgdAbs
                                           : kFinalAdamAbs;
    if (diff <= kFinalAdamAbs) ++within;
    d.max_abs = std::max(d.max_abs, diff);
    if (diff - bound > worst_excess) {
      worst_excess = diff - bound;
      d.worst_index = static_cast<int64_t>(i);
      d.actual = a[i];
      d.expected = b[i];
    }
  }
  d.frac_within = a.empty() ? 1.0 : double(within) / double(a.size());
  if (rule == Rule::adam_final)
    d.ok = d.frac_within >= kFinalAdamFrac && d.max_abs <= kFinalAdamMax;
  else
    d.ok = a.empty() || worst_excess <= 0;
  return d;
}

Report compare_state(const std::map<std::string, Tensor>& actual,
                     const std::map<std::string, Tensor>& expected, Rule rule) {
  Report r;
  for (const auto& [name, e] : expected) {
    auto it = actual.find(name);
    TensorDiff d = compare_tensor(name, it == actual.end() ? Tensor() : it->second, e, rule);
    r.ok = r.ok && d.ok;
    r.tensors.push_back(std::move(d));
  }
  return r;
}

const TensorDiff* Report::worst() const {
  const TensorDiff* w = nullptr;
  for (const auto& d : tensors) {
    if (!w || (!d.ok && w->ok) || (d.ok == w->ok && d.max_abs > w->max_abs)) w = &d;
  }
  return w;
}

std::string Report::str() const {
  int failed = 0;
  for (const auto& d : tensors) failed += !d.ok;
  const TensorDiff* w = worst();
  return fmt::format("{} tensors, {} failing; worst: {}", tensors.size(), failed,
                     w ? w->str() : "none");
}

double worst_loss_rel(const std::vector<double>& actual, const std::vector<double>& expected) {
  if (actual.size() != expected.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    double rel = std::abs(actual[i] - expected[i]) / std::abs(expected[i]);
    worst = std::max(worst, std::isnan(rel) ? std::numeric_limits<double>::infinity() : rel);
  }
  return worst;
}

// ---- replay ----
namespace {
std::map<std::string, Tensor> to_map(const NamedTensors& named) {
  std::map<std::string, Tensor> m;
  for (const auto& [name, t] : named) {
    Tensor v = is_floating(t.dtype()) ? t.detach().to(DType::f32) : t.detach();
    m.emplace(name, v.clone());
  }
  return m;
}
}  // namespace

FpResult replay_fp(const Set& set, const Case& c, DType dtype) {
  MQ_CHECK(c.mode == "fp", "golden: replay_fp on case '{}' of mode '{}'", c.name, c.mode);
  int64_t classes = 10;
  ResNetCifar model(20, classes, set.inputs_x.size(2));
  model.to(dtype);
  model.load_state_dict(set.init(), /*strict=*/true);
  model.train();
  auto opt = make_optimizer(c.optimizer, model.parameters(), set.lr, /*metaquant=*/false);
  FpResult r;
  for (int step = 0; step < set.steps; ++step) {
    model.zero_grad();
    Tensor logits = model.forward(set.batch_x(step).to(dtype));
    Tensor loss = cross_entropy(logits, set.batch_y(step));
    r.losses.push_back(loss.item());
    loss.backward();
    if (step == 0) {
      r.step1_logits = logits.detach().to(DType::f32).clone();
      for (const auto& [name, p] : model.named_parameters()) {
        MQ_CHECK(p.grad().defined(), "golden: parameter '{}' received no gradient", name);
        r.step1_grads.emplace(name, p.grad().to(DType::f32).clone());
      }
    }
    opt->step();
  }
  r.final_state = to_map(model.state_dict());
  return r;
}

void Verdict::note(bool pass, const std::string& line) {
  ok = ok && pass;
  lines.push_back(std::string(pass ? "ok   " : "FAIL ") + line);
}

void Verdict::check_losses(const std::vector<double>& losses, const Case& c) {
  double rel = worst_loss_rel(losses, c.losses);
  std::string text;
  for (size_t i = 0; i < losses.size(); ++i)
    text += fmt::format("{}{:.7f}/{:.7f}", i ? " " : "", losses[i],
                        i < c.losses.size() ? c.losses[i] : NAN);
  note(rel <= kLossRel,
       fmt::format("losses (engine/golden): {}; worst relative error {:.3g}", text, rel));
}

Verdict verify_fp(const Set& set, const Case& c, DType dtype) {
  Verdict v;
  FpResult r = replay_fp(set, c, dtype);
  auto note = [&](bool ok, const std::string& line) { v.note(ok, line); };
  v.check_losses(r.losses, c);

  TensorDiff logits =
      compare_tensor("step1.logits", r.step1_logits, set.load_one(c, "step1.logits"),
                     Rule::allclose);
  note(logits.ok, logits.str());
  Report grads = compare_state(r.step1_grads, set.load(c, "step1.grad."), Rule::allclose);
  note(grads.ok, "step-1 gradients: " + grads.str());
  bool adam = c.optimizer == "Adam";
  Report fin = compare_state(r.final_state, set.load(c, "final."),
                             adam ? Rule::adam_final : Rule::max_abs);
  note(fin.ok, std::string("final state (") + (adam ? "Adam rule" : "max abs 1e-4") +
                   "): " + fin.str());
  if (!grads.ok)
    for (const auto& d : grads.tensors)
      if (!d.ok) v.lines.push_back("     grad " + d.str());
  if (!fin.ok)
    for (const auto& d : fin.tensors)
      if (!d.ok) v.lines.push_back("     final " + d.str());
  return v;
}

}  // namespace mq::golden
