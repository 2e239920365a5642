#include "op_harness.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <fmt/ranges.h>

#include "benchmarks/harness/bench_timer.h"
#include "engine/cuda/cuda_api.h"
#include "meta/op_index.h"

namespace mq::test {

// ---- inputs ----

HostTensor host(const Tensor& t) {
  Tensor h = t.detach().to(Device::cpu());
  return {h.shape(), h.to(DType::f64).to_vector<double>()};
}

Input normal(const Shape& shape, uint64_t seed, double scale, double offset) {
  // randn()'s values (same generator, same order), shifted.
  Input in;
  in.shape = shape;
  in.values = [shape, seed, scale, offset] {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> dist(0.0, scale);
    std::vector<double> v(shape_numel(shape));
    for (auto& x : v) x = dist(rng) + offset;
    return v;
  };
  return in;
}

Input uniform_in(const Shape& shape, uint64_t seed, double lo, double hi) {
  Input in;
  in.shape = shape;
  in.values = [shape, seed, lo, hi] {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<double> v(shape_numel(shape));
    for (auto& x : v) x = dist(rng);
    return v;
  };
  return in;
}

Input values(std::vector<double> v, const Shape& shape) {
  MQ_CHECK(static_cast<int64_t>(v.size()) == shape_numel(shape), "values: {} for {}", v.size(),
           shape_str(shape));
  Input in;
  in.shape = shape;
  in.values = [v] { return v; };
  return in;
}

Input labels(std::vector<int64_t> v, DType dtype) {
  std::vector<double> d(v.begin(), v.end());
  Input in = values(std::move(d), {static_cast<int64_t>(v.size())});
  in.fixed = dtype;
  return in;
}

Tensor materialize(const Input& in, DType dtype, Device device) {
  Tensor t = Tensor::from_vector(in.values(), in.shape).to(in.fixed.value_or(dtype));
  t = t.to(device);
  if (in.requires_grad) t.set_requires_grad();
  return t;
}

Builder from_inputs(std::vector<Input> inputs,
                    std::function<std::vector<Tensor>(const std::vector<Tensor>&)> f) {
  return [inputs = std::move(inputs), f = std::move(f)](DType dt, Device dev) {
    Built b;
    for (const Input& in : inputs) b.inputs.push_back(materialize(in, dt, dev));
    std::vector<Tensor> handles = b.inputs;  // share the tensors (perturbed in place)
    b.forward = [handles, f] { return f(handles); };
    return b;
  };
}

// ---- registry ----

OpCase& OpRegistry::add(const std::string& op, const std::string& params) {
  cases_.push_back(OpCase{});
  cases_.back().op = op;
  cases_.back().params = params;
  return cases_.back();
}

void OpRegistry::no_gradcheck(const std::string& op, const std::string& why) {
  no_gradcheck_.emplace_back(op, why);
}

const std::string* OpRegistry::no_gradcheck_reason(const std::string& op) const {
  for (const auto& [name, why] : no_gradcheck_)
    if (name == op) return &why;
  return nullptr;
}

const OpRegistry& op_registry() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    add_elementwise_cases(r);
    add_reduction_cases(r);
    add_conv_cases(r);
    add_linear_cases(r);
    add_pool_cases(r);
    add_norm_cases(r);
    add_loss_cases(r);
    add_quantize_cases(r);
    add_meta_cases(r);
    return r;
  }();
  return registry;
}

// The registry is complete: a new op in the index fails here until it has cases.
TEST_CASE("op harness: every op of meta/op_index.h has an entry in every mode", "[ops][harness]") {
  std::set<std::string> index;
#define MQ_INDEX_NAME(name, header) index.insert(#name);
  MQ_FOR_EACH_OP(MQ_INDEX_NAME)
#undef MQ_INDEX_NAME
  struct Coverage {
    int formula = 0, grad = 0, cuda = 0, perf = 0;
  };
  std::map<std::string, Coverage> covered;
  const OpRegistry& reg = op_registry();
  for (const OpCase& c : reg.cases()) {
    INFO(c.title() << ": an entry for an op that is not in meta/op_index.h");
    CHECK(index.count(c.op) == 1);
    Coverage& k = covered[c.op];
    k.formula += c.reference ? 1 : 0;
    k.grad += c.gradcheck ? 1 : 0;
    k.cuda += c.cuda ? 1 : 0;
    k.perf += c.perf ? 1 : 0;
  }
  for (const std::string& op : index) {
    INFO("op " << op << " (meta/op_index.h): add its cases to a tests/op_cases_*.cpp");
    CHECK(covered.count(op) == 1);  // names every missing op, not only the first
    if (!covered.count(op)) continue;
    const Coverage& k = covered[op];
    CHECK(k.formula > 0);
    CHECK(k.cuda > 0);
    CHECK(k.perf > 0);
    const std::string* why = reg.no_gradcheck_reason(op);
    INFO("gradient check: " << (why ? *why : "none registered and no reason given"));
    CHECK((k.grad > 0) != (why != nullptr));
  }
}

bool op_selected(const std::string& op) {
  const char* env = std::getenv("MQ_OP");
  if (!env || !*env) return true;
  std::stringstream list(env);
  for (std::string name; std::getline(list, name, ',');)
    if (name == op) return true;
  return false;
}

// ---- comparisons ----

namespace {

std::string index_str(const Shape& shape, int64_t flat) {
  if (shape.size() < 2) return fmt::format("[{}]", flat);
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return fmt::format("[{}]", fmt::join(idx, ", "));
}

// "" when `actual` is within `e` (tolerance `tol` unless e says otherwise), else its worst
// element.
std::string check_value(const Tensor& actual, const Expected& e, Tol tol) {
  if (!actual.defined()) return "undefined";
  if (actual.shape() != e.want.shape)
    return fmt::format("shape {} expected {}", shape_str(actual.shape()), shape_str(e.want.shape));
  const HostTensor a = host(actual);
  const Tol t = e.tol.value_or(tol);
  double worst = -INFINITY;
  int64_t worst_i = -1;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a[i], w = e.want[i];
    double excess;
    if (e.excess) {
      excess = e.excess(i, x);
      if (std::isnan(excess)) excess = INFINITY;
    } else if (std::isnan(x) || std::isnan(w)) {
      excess = std::isnan(x) && std::isnan(w) ? -INFINITY : INFINITY;
    } else if (x == w) {
      excess = -INFINITY;  // also equal infinities
    } else {
      excess = std::abs(x - w) - (t.atol + t.rtol * std::abs(w));
    }
    if (excess > worst) worst = excess, worst_i = i;
  }
  if (worst <= 0) return "";
  const double x = a[worst_i], w = e.want[worst_i];
  const std::string bound =
      e.excess ? fmt::format("custom bound exceeded by {:.3g}", worst)
               : fmt::format("allowed {:.3g} = atol {} + rtol {}", t.atol + t.rtol * std::abs(w),
                             t.atol, t.rtol);
  return fmt::format("worst element {} of {}: actual {:.9g} expected {:.9g} (|diff| {:.3g}, {})",
                     index_str(a.shape, worst_i), shape_str(a.shape), x, w, std::abs(x - w), bound);
}

// Random cotangents R_k for the outputs with history (undefined for the others), on the
// outputs' device: the objective is sum_k sum(y_k * R_k).
std::vector<Tensor> cotangents(const std::vector<Tensor>& ys) {
  std::vector<Tensor> rs(ys.size());
  for (size_t k = 0; k < ys.size(); ++k)
    if (ys[k].defined() && ys[k].requires_grad())
      rs[k] = randn(ys[k].shape(), 4242 + k, ys[k].dtype()).to(ys[k].device());
  return rs;
}

// Backward of sum_k sum(y_k * R_k) with the inputs' gradients cleared first (a forward may set
// .grad: metaquant_weight reads the previous step's). False when nothing has history.
bool backward(const std::vector<Tensor>& ys, const std::vector<Tensor>& rs,
              std::vector<Tensor>& inputs) {
  std::vector<size_t> with_history;
  for (size_t k = 0; k < ys.size(); ++k)
    if (rs[k].defined()) with_history.push_back(k);
  if (with_history.empty()) return false;
  for (Tensor& t : inputs)
    if (t.requires_grad()) t.zero_grad();
  if (with_history.size() == 1) {  // R itself as the output's gradient (no extra ops to time)
    Tensor y = ys[with_history[0]];
    y.backward(rs[with_history[0]]);
    return true;
  }
  Tensor loss;
  for (size_t k : with_history) {
    Tensor term = sum(mul(ys[k], rs[k]));
    loss = loss.defined() ? add(loss, term) : term;
  }
  loss.backward();
  return true;
}

HostTensors host_all(const std::vector<Tensor>& ts) {
  HostTensors out;
  for (const Tensor& t : ts) out.push_back(t.defined() ? host(t) : HostTensor{});
  return out;
}

struct Failures {
  const OpCase& c;
  std::string mode;
  std::vector<std::string> list;
  void add(const std::string& where, const std::string& what) {
    if (!what.empty()) list.push_back(fmt::format("{} {}: {}: {}", c.title(), mode, where, what));
  }
};

}  // namespace

// ---- modes ----

std::vector<std::string> run_formula(const OpCase& c) {
  std::vector<std::string> all;
  if (!c.reference) return {};  // a perf-only case
  for (DType dt : c.dtypes) {
    Failures f{c, std::string("formula ") + dtype_name(dt), {}};
    try {
      Built b = c.build(dt, Device::cpu());
      std::vector<Tensor> ys = b.forward();
      const HostTensors in = host_all(b.inputs);
      const Tol tol = dt == DType::f64 ? c.f64_tol : c.f32_tol;
      const std::vector<Expected> want = c.reference(in, dt);
      if (want.size() != ys.size())
        f.add("outputs", fmt::format("{} outputs, the reference has {}", ys.size(), want.size()));
      for (size_t k = 0; k < std::min(want.size(), ys.size()); ++k)
        f.add(fmt::format("output {}", k), check_value(ys[k], want[k], tol));
      if (c.grad_reference) {
        std::vector<Tensor> rs = cotangents(ys);
        if (!backward(ys, rs, b.inputs)) f.add("gradient", "no output has autograd history");
        const std::vector<Expected> grads = c.grad_reference(in, host_all(rs), dt);
        size_t j = 0;
        for (size_t k = 0; k < b.inputs.size(); ++k) {
          if (!b.inputs[k].requires_grad()) continue;
          const std::string where = fmt::format("gradient of input {}", k);
          if (j >= grads.size()) f.add(where, "no reference gradient");
          else f.add(where, check_value(b.inputs[k].grad(), grads[j], tol));
          ++j;
        }
        if (j != grads.size()) f.add("gradients", fmt::format("{} reference gradients for {} inputs with grad", grads.size(), j));
      }
    } catch (const std::exception& e) {
      f.add("threw", e.what());
    }
    all.insert(all.end(), f.list.begin(), f.list.end());
  }
  return all;
}

std::vector<std::string> run_gradcheck(const OpCase& c) {
  if (!c.gradcheck) return {};
  Failures f{c, "gradcheck f64", {}};
  try {
    Built b = c.build(DType::f64, Device::cpu());
    MultiFn forward = [&b](const std::vector<Tensor>&) { return b.forward(); };
    MultiFn numeric = c.grad_surrogate ? c.grad_surrogate(b.inputs) : MultiFn{};
    f.add("gradient", check_gradients(forward, b.inputs, *c.gradcheck, kGradCheckEps, numeric));
  } catch (const std::exception& e) {
    f.add("threw", e.what());
  }
  return f.list;
}

std::vector<std::string> run_cuda(const OpCase& c) {
  if (!c.cuda) return {};
  Failures f{c, "cuda vs cpu f32", {}};
  struct Tf32 {  // restored however the case ends
    explicit Tf32(bool on) { cuda::set_allow_tf32(on); }
    ~Tf32() { cuda::set_allow_tf32(false); }
  } tf32(c.tf32);
  try {
    Built bc = c.build(DType::f32, Device::cpu());
    Built bg = c.build(DType::f32, Device::cuda(0));
    // The comparison means something only if both builds hold the same values.
    if (bc.inputs.size() != bg.inputs.size()) f.add("build", "different inputs on the two devices");
    for (size_t k = 0; k < std::min(bc.inputs.size(), bg.inputs.size()); ++k)
      if (host(bc.inputs[k]).v != host(bg.inputs[k]).v || !bg.inputs[k].is_cuda())
        f.add(fmt::format("input {}", k), "the build is not the same on both devices");
    if (!f.list.empty()) return f.list;

    std::vector<Tensor> yc = bc.forward(), yg = bg.forward();
    const HostTensors cpu_out = host_all(yc);
    std::vector<Expected> want;
    if (c.cuda_expected) want = c.cuda_expected(cpu_out);
    else
      for (const HostTensor& h : cpu_out) want.emplace_back(h);
    if (yg.size() != yc.size() || want.size() != yc.size())
      f.add("outputs", fmt::format("{} on CUDA, {} on the CPU, {} expected", yg.size(), yc.size(), want.size()));
    for (size_t k = 0; k < std::min({yg.size(), yc.size(), want.size()}); ++k) {
      const std::string where = fmt::format("output {}", k);
      if (yg[k].defined() && !yg[k].is_cuda()) f.add(where, "not on the CUDA device");
      f.add(where, check_value(yg[k], want[k], c.cuda_tol));
    }
    std::vector<Tensor> rc = cotangents(yc), rg(rc.size());
    for (size_t k = 0; k < rc.size(); ++k)
      if (rc[k].defined()) rg[k] = rc[k].to(Device::cuda(0));
    if (backward(yc, rc, bc.inputs) && backward(yg, rg, bg.inputs)) {
      const Tol tol = c.cuda_grad_tol.value_or(c.cuda_tol);
      for (size_t k = 0; k < bc.inputs.size(); ++k) {
        if (!bc.inputs[k].requires_grad()) continue;
        const std::string where = fmt::format("gradient of input {}", k);
        if (!bg.inputs[k].grad().defined()) f.add(where, "undefined on CUDA");
        else f.add(where, check_value(bg.inputs[k].grad(), Expected(host(bc.inputs[k].grad())), tol));
      }
    }
  } catch (const std::exception& e) {
    f.add("threw", e.what());
  }
  return f.list;
}

std::vector<PerfRow> run_perf(const OpCase& c, bool with_cuda) {
  std::vector<PerfRow> rows;
  std::vector<Device> devices{Device::cpu()};
  if (with_cuda) devices.push_back(Device::cuda(0));
  for (Device dev : devices) {
    Built b = c.build(DType::f32, dev);
    auto sync = [dev] {
      if (dev.is_cuda()) cuda::synchronize(dev.index);
    };
    // Enough repeats for about 0.3 s, 3 to 50.
    auto timed = [&](const std::function<void()>& fn) {
      const double once = bench::time_cpu([&] { fn(); sync(); }, 1, 1).median_s;
      const int repeat = std::clamp(static_cast<int>(0.3 / std::max(once, 1e-6)), 3, 50);
      return bench::time_cpu([&] { fn(); sync(); }, 0, repeat).median_s * 1e3;
    };
    PerfRow row;
    row.device = dev.str();
    row.forward_ms = timed([&] {
      NoGradGuard ng;
      b.forward();
    });
    std::vector<Tensor> ys = b.forward();
    std::vector<Tensor> rs = cotangents(ys);
    if (backward(ys, rs, b.inputs))
      row.backward_ms = timed([&] { backward(b.forward(), rs, b.inputs); });
    rows.push_back(row);
  }
  return rows;
}

}  // namespace mq::test
