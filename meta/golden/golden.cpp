#include "meta/golden/golden.h"

#include <cmath>
#include <limits>

#include "engine/io/npy.h"
#include "engine/ops.h"
#include "engine/optim/optimizer.h"
#include "meta/trainers.h"

namespace mq::golden {

// ---- comparing ----
std::string TensorDiff::str() const {
  if (!problem.empty()) return fmt::format("{}: {}", name, problem);
  std::string text = fmt::format("{}: {} max|diff| {:.3g} at [{}] (actual {:.9g}, expected {:.9g})",
                                 name, ok ? "ok" : "FAIL", max_abs, worst_index, actual, expected);
  if (rule != Rule::allclose)
    text += fmt::format(", {} of {} within 1e-4 + 1e-5|x|", within_tol, elements);
  return text;
}

namespace {
double final_tol(double expected) { return kFinalAtol + kFinalRtol * std::abs(expected); }
}  // namespace

TensorDiff compare_tensor(const std::string& name, const Tensor& actual, const Tensor& expected,
                          Rule rule) {
  TensorDiff d;
  d.name = name;
  d.rule = rule;
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
  d.elements = static_cast<int64_t>(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    double diff = std::abs(a[i] - b[i]);
    if (std::isnan(diff)) diff = std::numeric_limits<double>::infinity();
    const double scale = std::abs(b[i]);
    const double bound = rule == Rule::allclose    ? kStep1Atol + kStep1Rtol * scale
                         : rule == Rule::final_sgd ? final_tol(b[i])
                                                   : kFinalAdamMaxAtol + kFinalAdamMaxRtol * scale;
    if (diff <= final_tol(b[i])) ++d.within_tol;
    d.max_abs = std::max(d.max_abs, diff);
    if (diff - bound > worst_excess) {
      worst_excess = diff - bound;
      d.worst_index = static_cast<int64_t>(i);
      d.actual = a[i];
      d.expected = b[i];
    }
  }
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
  // The golden files hold every float tensor: one without its file is not a pass.
  for (const auto& [name, a] : actual) {
    if (expected.count(name) || !is_floating(a.dtype())) continue;
    TensorDiff d;
    d.name = name;
    d.ok = false;
    d.problem = "no golden file for this tensor of the engine's state";
    r.ok = false;
    r.tensors.push_back(std::move(d));
  }
  return r;
}

AdamFraction adam_fraction(const std::vector<const Report*>& reports) {
  int64_t elements = 0, within = 0;
  for (const Report* r : reports)
    for (const TensorDiff& d : r->tensors) elements += d.elements, within += d.within_tol;
  AdamFraction f;
  f.fraction = elements ? double(within) / double(elements) : 1.0;
  f.ok = f.fraction >= kFinalAdamFrac;
  return f;
}

std::string AdamFraction::str() const {
  return fmt::format("{:.4f}% of the final elements within 1e-4 + 1e-5|x| (Adam rule: >= {:g}%)",
                     100 * fraction, 100 * kFinalAdamFrac);
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
  const std::unique_ptr<Model> built = make_golden_model(set, default_layer_factory());
  Model& model = *built;
  model.to(dtype);
  model.load_state_dict(set.init(), /*strict=*/true);
  // The trainer of `mqtrain pretrain` (SteTrainer with plain layers is the full-precision one).
  SteTrainer trainer(model, c.optimizer, set.lr);
  FpResult r;
  for (int step = 0; step < set.steps; ++step) {
    StepOutput out = trainer.step(set.batch_x(step).to(dtype), set.batch_y(step));
    r.losses.push_back(out.loss);
    if (step == 0) {
      r.step1_logits = out.logits.to(DType::f32).clone();
      // The gradients stay on the parameters until the next step clears them.
      for (const auto& [name, p] : model.named_parameters()) {
        MQ_CHECK(p.grad().defined(), "golden: parameter '{}' received no gradient", name);
        r.step1_grads.emplace(name, p.grad().to(DType::f32).clone());
      }
    }
  }
  r.final_state = to_map(model.state_dict());
  return r;
}

const char* final_rule_name(bool adam) {
  return adam ? "Adam rule: all within 1e-2 + 1e-3|x|" : "all within 1e-4 + 1e-5|x|";
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
  check_case_files(set, c);
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
  const bool adam = c.optimizer == "Adam";
  Report fin = compare_state(r.final_state, set.load(c, "final."),
                             adam ? Rule::final_adam : Rule::final_sgd);
  note(fin.ok, std::string("final state (") + final_rule_name(adam) + "): " + fin.str());
  if (adam) {
    const AdamFraction f = adam_fraction({&fin});
    note(f.ok, f.str());
  }
  if (!grads.ok)
    for (const auto& d : grads.tensors)
      if (!d.ok) v.lines.push_back("     grad " + d.str());
  if (!fin.ok)
    for (const auto& d : fin.tensors)
      if (!d.ok) v.lines.push_back("     final " + d.str());
  return v;
}

}  // namespace mq::golden
