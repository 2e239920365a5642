#include "meta/quantized_layers.h"

#include "engine/autograd.h"
#include "engine/ops.h"

namespace mq {
namespace {

Tensor quantized_forward(const Tensor& W, QuantState& q, QuantSpec spec, bool training) {
  Tensor wm = W;
  q.calib = Tensor();
  if (training && q.update.meta) {
    q.calib = calibration(W, spec);
    wm = metaquant_weight(W, q.calib, q.update);
  }
  QuantizeResult r = quantize(wm, spec);
  q.wm = wm;
  q.w_tilde = r.w_tilde;
  q.w_hat = r.w_hat;
  if (q.w_hat.requires_grad()) q.w_hat.retain_grad();
  return q.w_hat;
}

}  // namespace

QConv2d::QConv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                 QuantSpec spec, int64_t groups, bool bias)
    : Conv2d(in, out, kernel, stride, padding, groups, bias) {
  validate(spec);
  q.spec = spec;
}

Tensor QConv2d::effective_weight() { return quantized_forward(weight, q, q.spec, is_training()); }

Tensor QConv2d::effective_bias() {
  if (is_training() && q.update.meta) return metaquant_bias(bias, q.update.lr);
  return bias;
}

QLinear::QLinear(int64_t in, int64_t out, QuantSpec spec) : Linear(in, out) {
  validate(spec);
  q.spec = per_tensor(spec);
}

Tensor QLinear::effective_weight() { return quantized_forward(weight, q, q.spec, is_training()); }

Tensor QLinear::effective_bias() {
  if (is_training() && q.update.meta) return metaquant_bias(bias, q.update.lr);
  return bias;
}

std::unique_ptr<Conv2d> QuantizedLayerFactory::conv(int64_t in, int64_t out, int64_t kernel,
                                                    int64_t stride, int64_t padding,
                                                    int64_t groups, bool bias) const {
  return std::make_unique<QConv2d>(in, out, kernel, stride, padding, spec_, groups, bias);
}

std::unique_ptr<Linear> QuantizedLayerFactory::linear(int64_t in, int64_t out) const {
  return std::make_unique<QLinear>(in, out, spec_);
}

std::vector<QuantLayerRef> quantized_layers(Module& model) {
  std::vector<QuantLayerRef> out;
  for (auto& [name, layer] : weight_layers(model))
    if (auto* ql = dynamic_cast<Quantized*>(layer)) out.push_back({name, layer, &ql->q});
  return out;
}

Tensor metaquant_weight(const Tensor& W, const Tensor& c, const MetaUpdate& u) {
  MQ_CHECK(u.meta, "metaquant_weight: no meta gradient attached");
  const Tensor wgrad = W.grad();
  MQ_CHECK(wgrad.defined(),
           "metaquant_weight: the weight {} has no gradient from the previous step (MetaQuant "
           "steps t > 0 read W.grad)", W.describe());
  Tensor G = flat_view(u.meta->G, u.offset, W.shape());
  Tensor value;
  {
    NoGradGuard ng;
    Tensor cG = mul(c, G);
    Tensor s = add(cG, sub(wgrad, cG));  // c*G + sg(W.grad - c*G), rounded as written
    value = sub(W.detach(), mul_scalar(s, u.lr));
  }
  Tensor dG = flat_view(*u.meta->dG, u.offset, W.shape());
  Tensor cs = c, token = u.meta->token;
  const double lr = u.lr;
  return record(value, "metaquant_weight", {W, token}, [cs, dG, lr](const Tensor& g) {
    Tensor slot = dG;
    slot.copy_(mul(mul_scalar(g, -lr), cs));
    return std::vector<Tensor>{g, Tensor::zeros({}, g.dtype(), g.device())};
  });
}

Tensor metaquant_bias(const Tensor& b, double lr) {
  const Tensor bgrad = b.grad();
  if (!bgrad.defined()) return b;
  Tensor value;
  {
    NoGradGuard ng;
    value = sub(b.detach(), mul_scalar(bgrad, lr));
  }
  return record(value, "metaquant_bias", {b},
                [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

}  // namespace mq
