#include "meta/meta_net.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "engine/ops.h"
#include "models/layers.h"

namespace mq {
namespace {
std::string squash(const std::string& text) {
  std::string s;
  for (unsigned char ch : text)
    if (ch != '-' && ch != '_') s += static_cast<char>(std::tolower(ch));
  return s;
}
}  // namespace

MetaKind parse_meta_kind(const std::string& text) {
  const std::string s = squash(text);
  if (s == "fcgrad") return MetaKind::fc_grad;
  if (s == "multifc") return MetaKind::multi_fc;
  if (s == "lstmfc") return MetaKind::lstm_fc;
  fail("unknown meta network '{}': expected one of FC-Grad, MultiFC, LSTMFC", text);
}

std::string meta_kind_str(MetaKind k) {
  switch (k) {
    case MetaKind::fc_grad: return "FC-Grad";
    case MetaKind::multi_fc: return "MultiFC";
    default: return "LSTMFC";
  }
}

MetaAct parse_meta_act(const std::string& text) {
  const std::string s = squash(text);
  if (s.empty() || s == "none" || s == "null") return MetaAct::none;
  if (s == "relu") return MetaAct::relu;
  if (s == "tanh") return MetaAct::tanh;
  fail("unknown meta activation '{}': expected one of none, relu, tanh", text);
}

std::string meta_act_str(MetaAct a) {
  switch (a) {
    case MetaAct::relu: return "relu";
    case MetaAct::tanh: return "tanh";
    default: return "none";
  }
}

MetaNet::MetaNet(MetaNetConfig config, uint64_t seed, DType dt) : config_(config) {
  const int64_t h = config.hidden;
  MQ_CHECK(h >= 1, "meta network: hidden size {} must be >= 1", h);
  switch (config.kind) {
    case MetaKind::fc_grad:
      fc_ = {Tensor::zeros({h, 1}, dt), Tensor::zeros({1, h}, dt)};
      register_parameter("linear1.weight", &fc_[0]);
      register_parameter("linear2.weight", &fc_[1]);
      break;
    case MetaKind::multi_fc: {
      MQ_CHECK(config.num_fc >= 2, "MultiFC: num_fc {} must be >= 2", config.num_fc);
      fc_.reserve(config.num_fc);
      fc_.push_back(Tensor::zeros({h, 1}, dt));
      for (int k = 1; k + 1 < config.num_fc; ++k) fc_.push_back(Tensor::zeros({h, h}, dt));
      fc_.push_back(Tensor::zeros({1, h}, dt));
      for (size_t k = 0; k < fc_.size(); ++k)
        register_parameter("network.Linear" + std::to_string(k) + ".weight", &fc_[k]);
      break;
    }
    case MetaKind::lstm_fc:
      MQ_CHECK(config.act == MetaAct::none,
               "LSTMFC takes no activation (got {}); it applies to FC-Grad and MultiFC",
               meta_act_str(config.act));
      w_ih = Tensor::zeros({4 * h, 1}, dt);
      w_hh = Tensor::zeros({4 * h, h}, dt);
      b_ih = Tensor::zeros({4 * h}, dt);
      b_hh = Tensor::zeros({4 * h}, dt);
      fc_w = Tensor::zeros({1, h}, dt);
      fc_b = Tensor::zeros({1}, dt);
      register_parameter("lstm1.weight_ih_l0", &w_ih);
      register_parameter("lstm1.weight_hh_l0", &w_hh);
      register_parameter("lstm1.bias_ih_l0", &b_ih);
      register_parameter("lstm1.bias_hh_l0", &b_hh);
      register_parameter("fc1.weight", &fc_w);
      register_parameter("fc1.bias", &fc_b);
      break;
  }
  reset_parameters(seed);
}

void MetaNet::reset_parameters(uint64_t seed) {
  NoGradGuard ng;
  InitRng rng(seed);
  // PyTorch order: registration order, each tensor drawn in full.
  for (auto& [name, t] : named_parameters()) {
    double fan_in = 1;
    if (config_.kind == MetaKind::lstm_fc) {
      fan_in = static_cast<double>(config_.hidden);  // LSTM and fc1 (in = h) alike
    } else {
      fan_in = static_cast<double>(t.size(1));
    }
    const double bound = 1.0 / std::sqrt(fan_in);
    rng.fill_uniform(t, -bound, bound);
  }
}

std::vector<Tensor> MetaNet::fc_weights() const {
  MQ_CHECK(config_.kind != MetaKind::lstm_fc, "fc_weights() of an LSTMFC meta network");
  return fc_;
}

namespace {
Tensor act_op(MetaAct a, const Tensor& z) {
  switch (a) {
    case MetaAct::relu: return relu(z);
    case MetaAct::tanh: return tanh(z);
    default: return z;
  }
}
Tensor sigmoid_op(const Tensor& z) { return add_scalar(mul_scalar(tanh(mul_scalar(z, 0.5)), 0.5), 0.5); }

// Columns [k*h, (k+1)*h) of a [n, 4h] tensor, as a product with a constant selection matrix.
Tensor gate(const Tensor& a, int k, int64_t h) {
  Tensor sel = Tensor::zeros({4 * h, h}, a.dtype());
  {
    Tensor host = Tensor::zeros({4 * h, h}, DType::f64);
    double* p = host.data<double>();
    for (int64_t j = 0; j < h; ++j) p[(k * h + j) * h + j] = 1.0;
    sel = host.to(a.dtype()).to(a.device());
  }
  return matmul(a, sel);
}
}  // namespace

Tensor meta_gradient_reference(const MetaNet& net, const Tensor& g_hat, const Tensor& w_tilde,
                               const LstmState& state, LstmState* state_out) {
  const MetaNetConfig& cfg = net.config();
  const int64_t n = g_hat.numel(), h = cfg.hidden;
  MQ_CHECK(w_tilde.numel() == n, "meta gradient: g_hat has {} elements but W~ {}", n,
           w_tilde.numel());
  Tensor g = g_hat.reshape({n, 1}), x = w_tilde.reshape({n, 1});
  if (cfg.kind != MetaKind::lstm_fc) {
    std::vector<Tensor> ws = net.fc_weights();
    Tensor a = cfg.kind == MetaKind::fc_grad ? g : x;
    for (size_t k = 0; k < ws.size(); ++k) {
      a = linear(a, ws[k], Tensor());
      if (k + 1 < ws.size()) a = act_op(cfg.act, a);
    }
    Tensor G = cfg.kind == MetaKind::fc_grad ? a : mul(g, a);
    return G.reshape(g_hat.shape());
  }
  Tensor hp = state.is_zero() ? Tensor::zeros({n, h}, x.dtype(), x.device()) : state.h;
  Tensor cp = state.is_zero() ? Tensor::zeros({n, h}, x.dtype(), x.device()) : state.c;
  Tensor pre = add(linear(x, net.w_ih, net.b_ih), linear(hp, net.w_hh, net.b_hh));
  Tensor i = sigmoid_op(gate(pre, 0, h)), f = sigmoid_op(gate(pre, 1, h));
  Tensor gg = tanh(gate(pre, 2, h)), o = sigmoid_op(gate(pre, 3, h));
  Tensor c = add(mul(f, cp), mul(i, gg));
  Tensor hn = mul(o, tanh(c));
  Tensor m = linear(hn, net.fc_w, net.fc_b);
  if (state_out) {
    state_out->h = hn.detach();
    state_out->c = c.detach();
  }
  return mul(g, m).reshape(g_hat.shape());
}

}  // namespace mq
