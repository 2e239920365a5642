#include "meta/golden/golden_quant.h"

#include <algorithm>
#include <cmath>
#include <ostream>

#include "meta/meta_net.h"
#include "meta/trainers.h"

namespace mq::golden {
namespace {

std::map<std::string, Tensor> to_map(const NamedTensors& named) {
  std::map<std::string, Tensor> m;
  for (const auto& [name, t] : named) m.emplace(name, t.detach().clone());
  return m;
}

}  // namespace

QuantResult replay_quant(const Set& set, const Case& c) {
  MQ_CHECK(c.mode == "ste" || c.mode == "metaquant",
           "golden: replay_quant on case '{}' of mode '{}'", c.name, c.mode);
  QuantSpec spec{parse_quantizer(c.quantize), c.bit_w};
  QuantizedLayerFactory factory(spec);
  const std::unique_ptr<Model> built = make_golden_model(set, factory);
  Model& model = *built;
  model.load_state_dict(set.init(), /*strict=*/true);
  model.train();
  QuantResult r;
  for (const auto& l : quantized_layers(model)) r.quantized_weights.push_back(l.name + ".weight");

  std::unique_ptr<MetaNet> meta;
  std::unique_ptr<QuantTrainer> trainer;
  if (c.mode == "ste") {
    trainer = std::make_unique<SteTrainer>(model, c.optimizer, set.lr);
  } else {
    meta = std::make_unique<MetaNet>(meta_config(set, c));
    meta->load_state_dict(set.load(c, "meta_init."), /*strict=*/true);
    MetaQuantOptions o;
    o.optimizer = c.optimizer;
    o.lr = set.lr;
    o.meta_lr = set.meta_lr;
    trainer = std::make_unique<MetaQuantTrainer>(model, *meta, o);
  }
  for (int step = 0; step < set.steps; ++step) {
    StepOutput out = trainer->step(set.batch_x(step), set.batch_y(step));
    r.losses.push_back(out.loss);
    if (step == 0) r.step1_logits = out.logits.clone();
  }
  r.final_state = to_map(model.state_dict());
  for (const auto& l : quantized_layers(model))
    if (l.q->w_tilde.defined() && l.q->w_tilde.same_storage(l.layer->weight))
      r.aliased_layers.push_back(l.name);
  if (meta) r.meta_final = to_map(meta->state_dict());
  return r;
}

TensorDiff compare_signs(const std::string& name, const Tensor& actual, const Tensor& expected) {
  TensorDiff d;
  d.name = name + " (signs)";
  if (!actual.defined() || actual.shape() != expected.shape()) {
    d.ok = false;
    d.problem = "missing or shape mismatch";
    return d;
  }
  auto a = actual.to(Device::cpu()).to(DType::f64).to_vector<double>();
  auto b = expected.to(DType::f64).to_vector<double>();
  int64_t flips = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::abs(b[i]) < kSignIgnoreAbs) continue;
    if ((a[i] > 0) != (b[i] > 0)) {
      if (flips++ == 0) {
        d.worst_index = static_cast<int64_t>(i);
        d.actual = a[i];
        d.expected = b[i];
        d.max_abs = std::abs(a[i] - b[i]);
      }
    }
  }
  d.ok = flips == 0;
  if (!d.ok) d.problem = fmt::format("{} sign flips, first at [{}] (actual {:.9g}, expected {:.9g})",
                                     flips, d.worst_index, d.actual, d.expected);
  return d;
}

Verdict verify_quant(const Set& set, const Case& c) {
  check_case_files(set, c);
  Verdict v;
  QuantResult r = replay_quant(set, c);
  auto note = [&](bool ok, const std::string& line) { v.note(ok, line); };
  v.check_losses(r.losses, c);
  if (c.mode == "ste") {
    TensorDiff logits = compare_tensor("step1.logits", r.step1_logits,
                                       set.load_one(c, "step1.logits"), Rule::allclose);
    note(logits.ok, logits.str());
  }
  const bool adam = c.optimizer == "Adam";
  const Rule rule = adam ? Rule::final_adam : Rule::final_sgd;
  const char* rule_name = final_rule_name(adam);
  auto expected = set.load(c, "final.");
  // The reference's second name of a weight that is its own W~ (kReferenceWeightAlias): a set
  // that recorded it is compared with the weight; one that did not has no such file.
  for (const auto& layer : r.aliased_layers) {
    const std::string alias = layer + std::string(kReferenceWeightAlias);
    if (expected.count(alias)) r.final_state[alias] = r.final_state.at(layer + ".weight");
  }
  Report fin = compare_state(r.final_state, expected, rule);
  note(fin.ok, fmt::format("final state ({}): {}", rule_name, fin.str()));
  if (!fin.ok)
    for (const auto& d : fin.tensors)
      if (!d.ok) v.lines.push_back("     final " + d.str());
  Report meta;
  if (c.mode == "metaquant") {
    meta = compare_state(r.meta_final, set.load(c, "meta_final."), rule);
    note(meta.ok, fmt::format("final meta network ({}): {}", rule_name, meta.str()));
    if (!meta.ok)
      for (const auto& d : meta.tensors)
        if (!d.ok) v.lines.push_back("     meta " + d.str());
  }
  if (adam) {  // the fraction within tol over all the case's final elements, model and meta
    const AdamFraction f = adam_fraction({&fin, &meta});
    note(f.ok, f.str());
  }
  int flips = 0;
  for (const auto& name : r.quantized_weights) {
    auto e = expected.find(name);
    auto a = r.final_state.find(name);
    if (e == expected.end()) continue;
    TensorDiff d = compare_signs(name, a == r.final_state.end() ? Tensor() : a->second, e->second);
    if (!d.ok) {
      ++flips;
      v.lines.push_back("     " + d.str());
    }
  }
  note(flips == 0, fmt::format("signs of the {} quantized weights: {} tensors with flips",
                               r.quantized_weights.size(), flips));
  return v;
}

bool verify_golden_dir(const std::string& dir, const std::string& case_filter, std::ostream& out,
                       const std::vector<std::string>& skip) {
  Set set = load_set(dir);
  for (const auto& name : skip) set.find(name);  // throws, listing the cases
  auto skipped = [&](const Case& c) {
    return std::find(skip.begin(), skip.end(), c.name) != skip.end();
  };
  std::vector<const Case*> selected;
  for (const auto& c : set.cases)
    if (c.name == case_filter) selected.push_back(&c);
  if (selected.empty())
    for (const auto& c : set.cases)
      if (case_filter.empty() || c.name.find(case_filter) != std::string::npos)
        selected.push_back(&c);
  if (selected.empty()) set.find(case_filter);  // throws, listing the cases
  std::erase_if(selected, [&](const Case* c) {
    if (skipped(*c)) out << "SKIP " << c->name << " (--skip)\n";
    return skipped(*c);
  });
  int failed = 0;
  for (const Case* c : selected) {
    Verdict v;
    // A case that cannot be replayed (a missing or malformed file) fails; the others still run.
    try {
      v = c->mode == "fp" ? verify_fp(set, *c) : verify_quant(set, *c);
    } catch (const std::exception& e) {
      v.note(false, std::string("error: ") + e.what());
    }
    failed += !v.ok;
    // One line per case: the verdict and its findings' headlines.
    out << (v.ok ? "PASS " : "FAIL ") << c->name << "\n";
    for (const auto& line : v.lines) out << "    " << line << "\n";
  }
  out << fmt::format("{} of {} golden case(s) pass\n", selected.size() - failed, selected.size());
  return failed == 0;
}

}  // namespace mq::golden
