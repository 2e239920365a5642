// Harness cases of the MetaQuant ops: meta_gradient (fused FC-Grad, MultiFC, LSTMFC against the
// same math in plain engine ops, values and phi gradients), split_gradient and the two ops
// that consume it, metaquant_weight and metaquant_bias.
#include <cstring>
#include <memory>

#include "meta/meta_op.h"
#include "meta/quantized_layers.h"
#include "op_harness.h"

namespace mq::test {

namespace {

struct MetaCase {
  MetaNetConfig config;
  uint64_t net_seed;
  int64_t n;
  bool with_state;
  // g_hat ~ N(0, g_scale) from seed, W~ ~ U(-1, 1) from seed + 1, (h, c) ~ N(0, 0.5) from
  // seed + 2, seed + 3
  uint64_t seed;
  std::string str() const {
    std::string s = fmt::format("{} h{}", meta_kind_str(config.kind), config.hidden);
    if (config.kind == MetaKind::multi_fc) s += fmt::format(" num_fc {}", config.num_fc);
    if (config.act != MetaAct::none) s += fmt::format(" {}", meta_act_str(config.act));
    s += fmt::format(" n{}", n);
    if (config.kind == MetaKind::lstm_fc) s += with_state ? " carried state" : " zero state";
    return s;
  }
};

std::vector<Input> data_inputs(const MetaCase& m, double g_scale) {
  std::vector<Input> in{normal({m.n}, m.seed, g_scale), uniform_in({m.n}, m.seed + 1, -1, 1)};
  if (m.with_state) {
    in.push_back(normal({m.n, m.config.hidden}, m.seed + 2, 0.5));
    in.push_back(normal({m.n, m.config.hidden}, m.seed + 3, 0.5));
  }
  return in;
}

// A meta network in `dt` whose parameters hold the values of `values` (host, in order).
std::shared_ptr<MetaNet> net_with(const MetaCase& m, DType dt, const HostTensors& values,
                                  size_t first) {
  auto net = std::make_shared<MetaNet>(m.config, m.net_seed, dt);
  std::vector<Tensor> params = net->parameters();
  for (size_t j = 0; j < params.size(); ++j) {
    const Tensor v = Tensor::from_vector(values[first + j].v, values[first + j].shape).to(dt);
    std::memcpy(params[j].raw_data(), v.raw_data(), params[j].nbytes());
  }
  return net;
}

// Inputs: g_hat, W~, [h, c], then the network's parameters (which require grad). Outputs: G,
// and for LSTMFC the new state (h', c').
OpCase& add_meta_gradient(OpRegistry& r, const MetaCase& m, double g_scale, Tol f32, Tol f64) {
  OpCase& c = r.add("meta_gradient", m.str());
  const bool lstm = m.config.kind == MetaKind::lstm_fc;
  const size_t n_data = m.with_state ? 4 : 2;
  c.build = [m, g_scale, lstm, n_data](DType dt, Device dev) {
    auto net = std::make_shared<MetaNet>(m.config, m.net_seed, dt);
    if (dev.is_cuda()) net->to(dev);
    Built b;
    for (const Input& in : data_inputs(m, g_scale)) b.inputs.push_back(materialize(in, dt, dev));
    for (const Tensor& p : net->parameters()) b.inputs.push_back(p);
    b.forward = [net, in = b.inputs, lstm, n_data] {
      const LstmState state = n_data == 4 ? LstmState{in[2], in[3]} : LstmState{};
      LstmState out;
      Tensor G = meta_gradient(*net, in[0], in[1], state, lstm ? &out : nullptr);
      return lstm ? std::vector<Tensor>{G, out.h, out.c} : std::vector<Tensor>{G};
    };
    return b;
  };
  // The same math in plain engine ops (meta_gradient_reference), in the same dtype.
  auto run_reference = [m, lstm, n_data](const HostTensors& in, DType dt, const HostTensor* R,
                                         std::vector<Expected>* grads) {
    auto net = net_with(m, dt, in, n_data);
    auto t = [&](size_t k) { return Tensor::from_vector(in[k].v, in[k].shape).to(dt); };
    const LstmState state = n_data == 4 ? LstmState{t(2), t(3)} : LstmState{};
    LstmState out;
    Tensor G = meta_gradient_reference(*net, t(0), t(1), state, lstm ? &out : nullptr);
    if (grads) {
      sum(mul(G, Tensor::from_vector(R->v, R->shape).to(dt))).backward();
      for (const Tensor& p : net->parameters()) grads->emplace_back(host(p.grad()));
    }
    std::vector<Expected> outputs{host(G)};
    if (lstm) outputs.insert(outputs.end(), {host(out.h), host(out.c)});
    return outputs;
  };
  c.reference = [run_reference](const HostTensors& in, DType dt) {
    return run_reference(in, dt, nullptr, nullptr);
  };
  c.grad_reference = [run_reference](const HostTensors& in, const HostTensors& cot, DType dt) {
    std::vector<Expected> grads;
    run_reference(in, dt, &cot[0], &grads);
    return grads;
  };
  c.f32_tol = f32;
  c.f64_tol = f64;
  c.cuda_expected = [](const HostTensors& cpu) {
    std::vector<Expected> e{Expected(cpu[0], Tol{1e-7, 1e-4})};  // G
    for (size_t k = 1; k < cpu.size(); ++k) e.emplace_back(cpu[k], Tol{1e-6, 1e-4});  // h', c'
    return e;
  };
  c.cuda_grad_tol = Tol{1e-5, 1e-3};  // phi gradients: sums over all rows
  return c;
}

// split_gradient's and the consumers' inputs: G [n] and per consumer W, W.grad of the previous
// step, c. The forward gives W the previous gradient (what metaquant_weight reads).
struct Consumer {
  Shape shape;
  int64_t offset;
};

Tensor consume(const SplitGradient& split, const Tensor& W, const Tensor& prev_grad,
               const Tensor& c, int64_t offset, double lr) {
  Tensor w = W;
  w.set_grad(prev_grad.detach().clone());
  return metaquant_weight(w, c, {&split, offset, lr});
}

constexpr double kLr = 0.1;

OpCase& add_consumers(OpRegistry& r, const std::string& op, int64_t n,
                      const std::vector<Consumer>& consumers, bool g_grad) {
  std::string params = fmt::format("G [{}]", n);
  for (const Consumer& k : consumers) params += fmt::format(", W {} at {}", shape_str(k.shape), k.offset);
  OpCase& c = r.add(op, params + (g_grad ? "" : " (W grad only)"));
  std::vector<Input> in{normal({n}, 1).grad(g_grad)};
  uint64_t seed = 2;
  for (const Consumer& k : consumers) {
    in.push_back(normal(k.shape, seed++).grad());
    in.push_back(normal(k.shape, seed++));
    in.push_back(uniform_in(k.shape, seed++, 0.5, 1.5));
  }
  c.build = from_inputs(in, [consumers](const std::vector<Tensor>& in) {
    const SplitGradient split = split_gradient(in[0]);
    std::vector<Tensor> out;
    for (size_t j = 0; j < consumers.size(); ++j)
      out.push_back(consume(split, in[1 + 3 * j], in[2 + 3 * j], in[3 + 3 * j], consumers[j].offset, kLr));
    return out;
  });
  // Wm = W - lr * W.grad in value (c G cancels); the gradient is the identity into W, and
  // -lr * c * dL/dWm into G's slice (through the split's token).
  c.reference = [consumers](const HostTensors& in, DType) {
    std::vector<Expected> out;
    for (size_t j = 0; j < consumers.size(); ++j) {
      HostTensor m = in[1 + 3 * j];
      for (size_t i = 0; i < m.v.size(); ++i) m.v[i] -= kLr * in[2 + 3 * j][i];
      out.emplace_back(m);
    }
    return out;
  };
  c.grad_reference = [consumers, g_grad](const HostTensors& in, const HostTensors& cot, DType) {
    HostTensor dG{in[0].shape, std::vector<double>(in[0].v.size(), 0.0)};
    std::vector<Expected> grads;
    for (size_t j = 0; j < consumers.size(); ++j) {
      for (int64_t i = 0; i < cot[j].numel(); ++i)
        dG.v[consumers[j].offset + i] = -kLr * in[3 + 3 * j][i] * cot[j][i];
      grads.emplace_back(cot[j]);
    }
    if (g_grad) grads.insert(grads.begin(), Expected(dG));
    return grads;
  };
  return c;
}

}  // namespace

void add_meta_cases(OpRegistry& r) {
  using K = MetaKind;
  // Fused against plain ops: tolerance 1e-10 (f64) and 2e-4 (f32) relative, 1e-2 of that
  // absolute; 10x for several reduction blocks (4096 rows each).
  auto add = [&r](const MetaCase& m, double tol64, double tol32, bool gradcheck) {
    OpCase& c = add_meta_gradient(r, m, 0.01, {tol32 * 1e-2, tol32}, {tol64 * 1e-2, tol64});
    if (gradcheck) c.gradcheck = kGradCheckTol;
  };
  add({MetaNetConfig{K::fc_grad, 16}, 1, 300, false, 11}, 1e-10, 2e-4, true);
  for (int k = 2; k <= 4; ++k) add({MetaNetConfig{K::multi_fc, 16, k}, 2, 300, false, 11}, 1e-10, 2e-4, true);
  for (MetaAct a : {MetaAct::relu, MetaAct::tanh}) {
    add({MetaNetConfig{K::multi_fc, 16, 3, a}, 3, 200, false, 11}, 1e-10, 2e-4, true);
    add({MetaNetConfig{K::fc_grad, 16, 2, a}, 3, 200, false, 11}, 1e-10, 2e-4, true);
  }
  add({MetaNetConfig{K::lstm_fc, 12}, 4, 300, false, 11}, 1e-10, 2e-4, true);
  add({MetaNetConfig{K::lstm_fc, 12}, 4, 300, true, 11}, 1e-10, 2e-4, true);
  add({MetaNetConfig{K::lstm_fc, 12}, 4, 9000, true, 11}, 1e-9, 2e-3, false);
  // Small enough for central differences of every parameter (g_hat ~ N(0, 0.3)).
  for (MetaNetConfig m : {MetaNetConfig{K::fc_grad, 5}, MetaNetConfig{K::multi_fc, 5, 2}, MetaNetConfig{K::multi_fc, 5, 4},
                          MetaNetConfig{K::lstm_fc, 5}}) {
    OpCase& c = add_meta_gradient(r, {m, 9, 40, false, 21}, 0.3, {2e-6, 2e-4}, {1e-12, 1e-10});
    c.gradcheck = kGradCheckTol;
  }
  add_meta_gradient(r, {MetaNetConfig{K::lstm_fc, 5}, 9, 40, true, 21}, 0.3, {2e-6, 2e-4}, {1e-12, 1e-10})
      .gradcheck = kGradCheckTol;
  // CUDA's sizes: collapsed FC-Grad and MultiFC over many blocks, tiny n, LSTMFC with zero and
  // carried state, an odd hidden size (too large for the plain-op reference in f64: CUDA only).
  for (const MetaCase& m : std::vector<MetaCase>{{MetaNetConfig{K::fc_grad, 100}, 3, 100000, false, 1},
                                                 {MetaNetConfig{K::multi_fc, 100, 3}, 3, 100000, false, 1},
                                                 {MetaNetConfig{K::multi_fc, 16, 4}, 3, 7, false, 1},
                                                 {MetaNetConfig{K::lstm_fc, 100}, 3, 50000, false, 1},
                                                 {MetaNetConfig{K::lstm_fc, 100}, 3, 50000, true, 1},
                                                 {MetaNetConfig{K::lstm_fc, 37}, 3, 3001, true, 1}}) {
    OpCase& c = add_meta_gradient(r, m, 0.01, {}, {});
    if (m.n > 10000) c.reference = nullptr, c.grad_reference = nullptr;
    else c.f32_tol = {2e-6, 2e-4}, c.f64_tol = {1e-12, 1e-10};
  }

  // split_gradient with two consumers; metaquant_weight alone; both against the formula.
  add_consumers(r, "split_gradient", 10, {{{2, 2}, 0}, {{6}, 4}}, true);
  add_consumers(r, "split_gradient", 500, {{{16, 3, 3, 3}, 5}, {{10, 4}, 437}, {{3}, 497}}, true);
  r.no_gradcheck("split_gradient",
                 "G's gradient is what the consumers write (-lr c dL/dWm), not a derivative of "
                 "their values (the sg of docs/metaquant.md §5)");
  for (auto [n, k] : {std::pair{int64_t(10), Consumer{{2, 2}, 0}},
                      std::pair{int64_t(10), Consumer{{6}, 4}},
                      std::pair{int64_t(500), Consumer{{16, 3, 3, 3}, 5}}}) {
    OpCase& c = add_consumers(r, "metaquant_weight", n, {k}, true);
    c.f64_tol = {1e-14, 0};
  }
  // The value's derivative in W is the identity (G fixed).
  add_consumers(r, "metaquant_weight", 10, {{{2, 2}, 3}}, false).gradcheck = kGradCheckTol;

  // metaquant_bias: b - lr * b.grad (b itself without a gradient), the identity into b.
  for (bool has_grad : {true, false})
    for (int64_t n : {1, 10}) {
      OpCase& c = r.add("metaquant_bias", fmt::format("[{}]{}", n, has_grad ? "" : " no gradient"));
      c.build = from_inputs({normal({n}, 1).grad(), normal({n}, 2)},
                            [has_grad](const std::vector<Tensor>& in) {
                              Tensor b = in[0];
                              if (has_grad) b.set_grad(in[1].detach().clone());
                              else b.zero_grad();
                              return std::vector<Tensor>{metaquant_bias(b, kLr)};
                            });
      c.reference = [has_grad](const HostTensors& in, DType) {
        HostTensor y = in[0];
        if (has_grad)
          for (size_t i = 0; i < y.v.size(); ++i) y.v[i] -= kLr * in[1][i];
        return std::vector<Expected>{y};
      };
      c.grad_reference = [](const HostTensors&, const HostTensors& cot, DType) {
        return std::vector<Expected>{cot[0]};
      };
      c.gradcheck = kGradCheckTol;
    }

  // perf: ResNet20's 0.27M weights; an LSTMFC at a size the CPU times in seconds.
  for (const MetaCase& m : std::vector<MetaCase>{{MetaNetConfig{K::multi_fc, 100, 3}, 3, 270000, false, 1},
                                                 {MetaNetConfig{K::lstm_fc, 100}, 3, 20000, true, 1}}) {
    OpCase& c = add_meta_gradient(r, m, 0.01, {}, {});
    c.reference = nullptr;
    c.grad_reference = nullptr;
    c.cuda = false;
    c.perf = true;
  }
  for (OpCase* c : {&add_consumers(r, "split_gradient", 270000, {{{64, 64, 3, 3}, 0}, {{128, 64, 3, 3}, 36864}}, true),
                    &add_consumers(r, "metaquant_weight", 270000, {{{64, 64, 3, 3}, 100}}, true)}) {
    c->reference = nullptr;
    c->grad_reference = nullptr;
    c->cuda = false;
    c->perf = true;
  }
  OpCase& bias = r.add("metaquant_bias", "[10]");
  bias.build = from_inputs({normal({10}, 1).grad(), normal({10}, 2)}, [](const std::vector<Tensor>& in) {
    Tensor b = in[0];
    b.set_grad(in[1].detach().clone());
    return std::vector<Tensor>{metaquant_bias(b, kLr)};
  });
  bias.cuda = false;
  bias.perf = true;
}

}  // namespace mq::test
