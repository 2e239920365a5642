#pragma once
// QConv2d / QLinear: conv and fc layers whose forward computes with W^ = Q(A(Wm))
// (docs/metaquant.md §3 and §5 step 3). Wm = W for plain (STE) training, for evaluation and for
// MetaQuant's first step; from its second step on, the trainer attaches a meta gradient and
//   Wm = W - lr * (c*G + sg(W.grad - c*G))   (value W - lr*W.grad; d/dphi through -lr*c*G,
//                                              identity into W), c = calibration of the current W,
// and a bias (QLinear's, a biased QConv2d's) bm = b - lr * sg(b.grad). Each layer keeps, from its last forward, W~ (the
// meta input), W^ (grad retained: g_W^ is the other meta input), c and the spec.
#include <memory>
#include <string_view>

#include "meta/meta_op.h"
#include "models/model.h"
#include "models/quantize_op.h"

namespace mq {

// The MetaQuant update attached to a layer for one forward (t > 0).
struct MetaUpdate {
  const SplitGradient* meta = nullptr;  // G of all layers (flat) and its token
  int64_t offset = 0;                   // this layer's slice of G
  double lr = 0;                        // the optimizee's learning rate
};

struct QuantState {
  QuantSpec spec;
  MetaUpdate update;  // meta == nullptr: Wm = W
  // From the last forward:
  Tensor wm;       // Wm (== W when no update)
  Tensor w_tilde;  // A(Wm), no history (shares Wm's storage for bwn/bwn-f/ternary)
  Tensor w_hat;    // Q(W~), grad retained in training
  Tensor calib;    // c from W (only with an update)
};

// Mixin shared by QConv2d and QLinear; the trainers find it with dynamic_cast.
class Quantized {
 public:
  virtual ~Quantized() = default;
  QuantState q;
};

class QConv2d : public Conv2d, public Quantized {
 public:
  QConv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
          QuantSpec spec, int64_t groups = 1, bool bias = false);
  Tensor effective_weight() override;
  Tensor effective_bias() override;  // as QLinear's: bm under a meta update, else b
};

class QLinear : public Linear, public Quantized {
 public:
  QLinear(int64_t in, int64_t out, QuantSpec spec);  // quantizes per tensor (bwn-f -> bwn)
  Tensor effective_weight() override;
  Tensor effective_bias() override;
};

// Builds QConv2d / QLinear with `spec`.
class QuantizedLayerFactory : public LayerFactory {
 public:
  explicit QuantizedLayerFactory(QuantSpec spec) : spec_(spec) {}
  std::unique_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                               int64_t padding, int64_t groups = 1,
                               bool bias = false) const override;
  std::unique_ptr<Linear> linear(int64_t in, int64_t out) const override;

 private:
  QuantSpec spec_;
};

// The quantized layers of a model (every QConv2d and QLinear of its module tree) in state_dict
// order, with their state_dict names.
struct QuantLayerRef {
  std::string name;  // e.g. "layer2.0.downsample.0"
  WeightLayer* layer;
  QuantState* q;
};
std::vector<QuantLayerRef> quantized_layers(Module& model);

// The reference's quantized layers register a weight that is its own W~ (BWN without a meta
// update) a second time, as `<layer>` + this suffix: its state_dicts carry the weight twice
// (docs/metaquant.md §11.1). The golden replay compares it; `--pretrained` drops it.
inline constexpr std::string_view kReferenceWeightAlias = ".pre_quantized_weight";

// The metaquant weight op: value W - lr*(cG + (W.grad - cG)) computed as written (so it rounds
// like the reference), gradient identity into W; into the meta gradient it writes
// -lr * c * dL/dWm to the layer's slice of meta->dG and passes through meta->token.
Tensor metaquant_weight(const Tensor& W, const Tensor& c, const MetaUpdate& u);
// bm = b - lr * sg(b.grad) (b when b has no gradient), gradient identity into b.
Tensor metaquant_bias(const Tensor& b, double lr);

}  // namespace mq
