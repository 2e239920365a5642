#pragma once
// The meta networks of docs/metaquant.md §4, shared by all quantized layers and applied
// coordinate-wise (every weight element is one row):
//   FC-Grad   G = M(g_hat),         M: Linear(1,h) -> [act] -> Linear(h,1)
//   MultiFC   G = g_hat * FCs(W~),  FCs: Linear(1,h) -> [act] -> (Linear(h,h) -> [act]) x
//                                   (num_fc - 2) -> Linear(h,1)
//   LSTMFC    G = g_hat * (fc1(h') ), (h', c') = LSTM cell(W~; h, c) one step, fc1 with bias
// Linear layers have no bias (except fc1). Parameter names are the reference's (golden files):
// MultiFC "network.Linear<k>.weight"; FC-Grad "linear1.weight", "linear2.weight"; LSTMFC
// "lstm1.weight_ih_l0" [4h,1], "lstm1.weight_hh_l0" [4h,h], "lstm1.bias_ih_l0",
// "lstm1.bias_hh_l0" (gates i, f, g, o), "fc1.weight" [1,h], "fc1.bias" [1].
// meta/meta_op.h computes the meta gradient (fused); meta_gradient_reference() below is the same
// math with plain engine ops, for tests and for the nonlinear MLPs.
#include <string>

#include "kernels/meta/meta_math.h"
#include "models/module.h"

namespace mq {

using kernels::MetaAct;
enum class MetaKind { fc_grad, multi_fc, lstm_fc };

// "FC-Grad", "MultiFC", "LSTMFC" (case-insensitive, '-'/'_' optional); error lists the choices.
MetaKind parse_meta_kind(const std::string& text);
std::string meta_kind_str(MetaKind k);  // the reference's spelling above
// "none" (also "" and "null"), "relu", "tanh".
MetaAct parse_meta_act(const std::string& text);
std::string meta_act_str(MetaAct a);

struct MetaNetConfig {
  MetaKind kind = MetaKind::multi_fc;
  int64_t hidden = 100;
  int num_fc = 3;  // MultiFC only, >= 2
  MetaAct act = MetaAct::none;  // FC-Grad and MultiFC (LSTMFC has none between lstm1 and fc1)
};

class MetaNet : public Module {
 public:
  // PyTorch default init drawn from `seed`: Linear U(+-1/sqrt(fan_in)), LSTM U(+-1/sqrt(h)).
  // f32 for training; f64 for gradient checks.
  explicit MetaNet(MetaNetConfig config, uint64_t seed = 0, DType dtype = DType::f32);
  void reset_parameters(uint64_t seed);

  const MetaNetConfig& config() const { return config_; }
  // True when the net is a linear map (FC-Grad / MultiFC without activation): it collapses to
  // one scalar s = W_last ... W_1.
  bool is_linear() const { return config_.kind != MetaKind::lstm_fc && config_.act == MetaAct::none; }

  // FC-Grad / MultiFC: the Linear weights in order ([h,1], [h,h]..., [1,h]).
  std::vector<Tensor> fc_weights() const;
  // LSTMFC
  Tensor w_ih, w_hh, b_ih, b_hh, fc_w, fc_b;

 private:
  MetaNetConfig config_;
  std::vector<Tensor> fc_;  // sized once in the constructor (registered addresses)
};

// The per-step LSTM state of all rows ([n, h] each), detached; undefined = zeros (first step).
struct LstmState {
  Tensor h, c;
  bool is_zero() const { return !h.defined(); }
};

// G [n] from g_hat [n] and w_tilde [n] (flat) with plain engine ops and autograd (materializes
// [n, h]). LSTMFC reads `state` and writes the new state to `state_out` (detached) when given.
Tensor meta_gradient_reference(const MetaNet& net, const Tensor& g_hat, const Tensor& w_tilde,
                               const LstmState& state = {}, LstmState* state_out = nullptr);

}  // namespace mq
