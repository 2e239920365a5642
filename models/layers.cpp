#include "models/layers.h"

#include <cmath>
#include <vector>

namespace mq {

double InitRng::uniform() {
  return static_cast<double>(gen_() >> 11) * 0x1.0p-53;  // 53 random bits
}

double InitRng::normal() {
  if (have_spare_) {
    have_spare_ = false;
    return spare_;
  }
  double u1 = 0;
  while (u1 <= 0) u1 = uniform();  // log(0) guard
  double u2 = uniform();
  double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2 * M_PI * u2);
  have_spare_ = true;
  return r * std::cos(2 * M_PI * u2);
}

namespace {
void fill_with(Tensor& t, const std::vector<double>& v) {
  Tensor host = Tensor::from_vector(v, t.shape()).to(t.dtype());
  t.copy_(host);
}
}  // namespace

void InitRng::fill_uniform(Tensor& t, double lo, double hi) {
  std::vector<double> v(t.numel());
  for (auto& x : v) x = uniform(lo, hi);
  fill_with(t, v);
}

void InitRng::fill_normal(Tensor& t, double mean, double std) {
  std::vector<double> v(t.numel());
  for (auto& x : v) x = mean + std * normal();
  fill_with(t, v);
}

// ---- Conv2d ----
Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, int64_t groups,
               bool with_bias)
    : in_channels(in), out_channels(out), kernel(k), stride(s), padding(p), groups(groups) {
  MQ_CHECK(in > 0 && out > 0 && k > 0 && s > 0 && p >= 0 && groups > 0,
           "Conv2d({}, {}, kernel {}, stride {}, padding {}, groups {}): invalid sizes", in, out,
           k, s, p, groups);
  MQ_CHECK(in % groups == 0 && out % groups == 0,
           "Conv2d({}, {}, groups {}): groups must divide the input and output channels", in,
           out, groups);
  weight = Tensor::zeros({out, in / groups, k, k});
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = Tensor::zeros({out});
    register_parameter("bias", &bias);
  }
}

void Conv2d::reset_parameters(InitRng& rng) {
  NoGradGuard no_grad;
  double fan_out = static_cast<double>(out_channels * kernel * kernel);
  rng.fill_normal(weight, 0.0, std::sqrt(2.0 / fan_out));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(double(in_channels / groups * kernel * kernel));
    rng.fill_uniform(bias, -bound, bound);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  // The op's own check names the op; a model's user needs the layer.
  MQ_CHECK(x.dim() == 4 && x.size(1) == in_channels,
           "layer '{}' (Conv2d {} -> {} channels, kernel {}, stride {}, groups {}): expected "
           "input [N, {}, H, W], got {}", path(), in_channels, out_channels, kernel, stride,
           groups, in_channels, x.describe());
  return conv2d(x, effective_weight(), bias.defined() ? effective_bias() : Tensor(),
                Conv2dParams{stride, padding, groups});
}

// ---- Linear ----
Linear::Linear(int64_t in, int64_t out) : in_features(in), out_features(out) {
  MQ_CHECK(in > 0 && out > 0, "Linear({}, {}): invalid sizes", in, out);
  weight = Tensor::zeros({out, in});
  bias = Tensor::zeros({out});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

void Linear::reset_parameters(InitRng& rng) {
  NoGradGuard no_grad;
  // kaiming_uniform(a = sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  rng.fill_uniform(weight, -bound, bound);
  rng.fill_uniform(bias, -bound, bound);
}

Tensor Linear::forward(const Tensor& x) {
  MQ_CHECK(x.dim() == 2 && x.size(1) == in_features,
           "layer '{}' (Linear {} -> {} features): expected input [N, {}], got {}", path(),
           in_features, out_features, in_features, x.describe());
  return linear(x, effective_weight(), effective_bias());
}

// ---- BatchNorm2d ----
BatchNorm2d::BatchNorm2d(int64_t c, double e, double m) : channels(c), eps(e), momentum(m) {
  MQ_CHECK(c > 0, "BatchNorm2d({}): invalid channel count", c);
  weight = Tensor::full({c}, 1.0);
  bias = Tensor::zeros({c});
  running_mean = Tensor::zeros({c});
  running_var = Tensor::full({c}, 1.0);
  num_batches_tracked = Tensor::zeros({}, DType::i64);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked, /*optional_on_load=*/true,
                  /*host_only=*/true);
}

void BatchNorm2d::reset_parameters() {
  weight.fill_(1.0);
  bias.zero_();
  running_mean.zero_();
  running_var.fill_(1.0);
  num_batches_tracked.zero_();
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  return normalize(x, [&](Tensor& mean, Tensor& var, BatchNormParams p) {
    return batch_norm(x, weight, bias, mean, var, p);
  });
}

Tensor BatchNorm2d::forward_relu(const Tensor& x, const Tensor& residual) {
  return normalize(x, [&](Tensor& mean, Tensor& var, BatchNormParams p) {
    return batch_norm_relu(x, weight, bias, mean, var, p, residual);
  });
}

Tensor BatchNorm2d::normalize(const Tensor& x, const Normalizer& op) {
  MQ_CHECK(x.dim() == 4 && x.size(1) == channels,
           "layer '{}' (BatchNorm2d of {} channels): expected input [N, {}, H, W], got {}",
           path(), channels, channels, x.describe());
  BatchNormParams p{is_training(), momentum, eps};
  if (is_training() && defer_stats) {
    // momentum 1: the scratch "running" statistics become this batch's mean and unbiased
    // variance exactly ((1 - 1) * 0 + 1 * m).
    Tensor mean = Tensor::zeros(running_mean.shape(), running_mean.dtype(), running_mean.device());
    Tensor var = Tensor::zeros(running_var.shape(), running_var.dtype(), running_var.device());
    Tensor y = op(mean, var, {true, 1.0, eps});
    if (stats_sum.batches == 0) {
      stats_sum.mean = mean;
      stats_sum.var = var;
    } else {
      add_inplace(stats_sum.mean, mean);
      add_inplace(stats_sum.var, var);
    }
    ++stats_sum.batches;
    return y;
  }
  if (is_training()) num_batches_tracked.data<int64_t>()[0] += 1;  // host-only counter
  return op(running_mean, running_var, p);
}

void BatchNorm2d::apply_stats(int slices) {
  MQ_CHECK(stats_sum.batches > 0 && slices > 0,
           "layer '{}': apply_stats({}) without batch statistics", path(), slices);
  NoGradGuard ng;
  const double m = momentum;
  Tensor mean = mul_scalar(stats_sum.mean, 1.0 / slices);
  Tensor var = mul_scalar(stats_sum.var, 1.0 / slices);
  running_mean.copy_(add(mul_scalar(running_mean, 1.0 - m), mul_scalar(mean, m)));
  running_var.copy_(add(mul_scalar(running_var, 1.0 - m), mul_scalar(var, m)));
  num_batches_tracked.data<int64_t>()[0] += 1;
  stats_sum = {};
}

// ---- factory ----
std::unique_ptr<Conv2d> LayerFactory::conv(int64_t in, int64_t out, int64_t kernel,
                                           int64_t stride, int64_t padding, int64_t groups,
                                           bool bias) const {
  return std::make_unique<Conv2d>(in, out, kernel, stride, padding, groups, bias);
}

std::unique_ptr<Linear> LayerFactory::linear(int64_t in, int64_t out) const {
  return std::make_unique<Linear>(in, out);
}

const LayerFactory& default_layer_factory() {
  static const LayerFactory f;
  return f;
}

}  // namespace mq
