#pragma once
// Layers with PyTorch's parameter names: Conv2d (no bias), Linear (bias), BatchNorm2d.
// Conv2d and Linear share WeightLayer, the hook quantized layers build on: the forward computes
// with effective_weight() (and Linear with effective_bias()), which is the plain parameter here
// and the quantized/meta-updated weight in QConv2d/QLinear. A LayerFactory lets a model build
// its convs and fc without knowing which kind it gets.
#include <cstdint>
#include <functional>
#include <memory>
#include <random>

#include "engine/ops.h"
#include "models/module.h"

namespace mq {

// Seeded initializer: mt19937_64 with our own uniform/normal transforms, so a seed gives the
// same weights with every standard library.
class InitRng {
 public:
  explicit InitRng(uint64_t seed) : gen_(seed) {}
  double uniform();  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal();   // standard normal (Box-Muller)
  // Fills a CPU or CUDA floating tensor (built on the host, copied once).
  void fill_uniform(Tensor& t, double lo, double hi);
  void fill_normal(Tensor& t, double mean, double std);

 private:
  std::mt19937_64 gen_;
  bool have_spare_ = false;
  double spare_ = 0;
};

class WeightLayer : public Module {
 public:
  enum class Kind { conv, linear };
  Tensor weight;

  virtual Kind kind() const = 0;
  // What the forward computes with. Quantized layers override this (quantize on each forward).
  virtual Tensor effective_weight() { return weight; }
  // Draws this layer's initial parameters.
  virtual void reset_parameters(InitRng& rng) = 0;
  virtual Tensor forward(const Tensor& x) = 0;
};

class Conv2d : public WeightLayer {
 public:
  // weight [out, in / groups, kernel, kernel]; with `bias` also bias [out] (after the weight in
  // the state_dict, as PyTorch).
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1,
         int64_t padding = 0, int64_t groups = 1, bool bias = false);
  Tensor bias;  // undefined without a bias

  Kind kind() const override { return Kind::conv; }
  virtual Tensor effective_bias() { return bias; }
  // Kaiming normal, fan_out, ReLU gain (std = sqrt(2 / (out * k * k))): the init of the
  // reference CIFAR ResNets (PyTorch's own default for Conv2d differs); a bias as PyTorch's,
  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in / groups * k * k.
  void reset_parameters(InitRng& rng) override;
  Tensor forward(const Tensor& x) override;

  const int64_t in_channels, out_channels, kernel, stride, padding, groups;
};

class Linear : public WeightLayer {
 public:
  Linear(int64_t in_features, int64_t out_features);
  Tensor bias;

  Kind kind() const override { return Kind::linear; }
  virtual Tensor effective_bias() { return bias; }
  // PyTorch default: weight and bias U(-1/sqrt(in), 1/sqrt(in)).
  void reset_parameters(InitRng& rng) override;
  Tensor forward(const Tensor& x) override;

  const int64_t in_features, out_features;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor weight, bias, running_mean, running_var;
  Tensor num_batches_tracked;  // i64 scalar, host-only; optional when loading

  void reset_parameters();  // weight 1, bias 0, running stats 0 / 1
  Tensor forward(const Tensor& x);
  // relu(forward(x) + residual?) (residual undefined for none) as one op, batch_norm_relu.
  Tensor forward_relu(const Tensor& x, const Tensor& residual);
  // Data-parallel training (meta/data_parallel.h): while defer_stats is on, a training forward
  // leaves the running statistics alone and adds its batch's mean and unbiased variance to
  // stats_sum (which the trainer may sum over ranks); apply_stats(slices) then updates the
  // running statistics once, from the mean over the `slices` batches, and clears the sums.
  struct BatchStats {
    Tensor mean, var;  // sums; undefined before the first batch
    int batches = 0;
  };
  bool defer_stats = false;
  BatchStats stats_sum;
  void apply_stats(int slices);
  // What conv2d_bn_eval needs to apply this layer in eval mode.
  BatchNormEvalParams eval_params() const { return {weight, bias, running_mean, running_var, eps}; }

  const int64_t channels;
  const double eps, momentum;

 private:
  // Runs op with the statistics to update (the running ones, or scratch ones that stats_sum
  // takes under defer_stats) and the parameters of this mode.
  using Normalizer = std::function<Tensor(Tensor& mean, Tensor& var, BatchNormParams p)>;
  Tensor normalize(const Tensor& x, const Normalizer& op);
};

// Builds the weight layers of a model; subclass it to get quantized layers.
class LayerFactory {
 public:
  virtual ~LayerFactory() = default;
  // Conv2d's arguments (groups: grouped or depthwise; bias: a bias after the weight).
  virtual std::unique_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                       int64_t padding, int64_t groups = 1,
                                       bool bias = false) const;
  virtual std::unique_ptr<Linear> linear(int64_t in, int64_t out) const;
};
const LayerFactory& default_layer_factory();

}  // namespace mq
