// The weight-quantization op: validation, device dispatch and the STE autograd node; the
// kernels are in kernels/quantize.
#include "models/quantize_op.h"

#include <algorithm>
#include <cctype>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "kernels/quantize/quantize.h"
#include "kernels/quantize/quantizer_table.h"

namespace mq {
namespace {

int64_t channels_of(const Tensor& W, QuantSpec spec) {
  return kernels::quantizer_info(spec.kind).per_channel && W.dim() >= 1 ? W.size(0) : 1;
}

void check_weight(const Tensor& W, const char* op) {
  check_defined(W, op, "W");
  check_floating(W, op, "W");
  MQ_CHECK(W.numel() >= 1, "{}: the weight {} is empty", op, W.describe());
}

Tensor workspace_for(Quantizer q, int64_t channels, Device device) {
  const size_t bytes = kernels::workspace_bytes_for(q, channels);
  return Tensor::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, DType::u8, device);
}

}  // namespace

Quantizer parse_quantizer(const std::string& text) {
  const kernels::QuantizerInfo* info = kernels::find_quantizer(text);
  MQ_CHECK(info, "unknown quantizer '{}': expected one of {}", text, kernels::quantizer_names());
  return info->kind;
}

std::string quantizer_str(Quantizer q) { return kernels::quantizer_info(q).name; }

std::string spec_str(QuantSpec spec) {
  return spec.kind == Quantizer::dorefa ? fmt::format("dorefa-{}bit", spec.bits)
                                        : quantizer_str(spec.kind);
}

void validate(QuantSpec spec) {
  MQ_CHECK(static_cast<size_t>(spec.kind) < kernels::kQuantizerTable.size(),
           "unknown quantizer {}", static_cast<int>(spec.kind));
  const kernels::QuantizerInfo& info = kernels::quantizer_info(spec.kind);
  MQ_CHECK(spec.bits >= info.min_bits && spec.bits <= info.max_bits,
           "quantizer {}: {} bits is not supported; use {}..{}", info.name, spec.bits,
           info.min_bits, info.max_bits);
}

QuantSpec per_tensor(QuantSpec spec) {
  if (spec.kind == Quantizer::bwn_f) spec.kind = Quantizer::bwn;
  return spec;
}

int kernel_bits(QuantSpec spec) { return kernels::kernel_bits_for(spec.kind, spec.bits); }

Tensor quantize_backward(const Tensor& W, const Tensor& g_hat, const Tensor& scale,
                         QuantSpec spec) {
  const char* op = "quantize_backward";
  check_weight(W, op);
  check_defined(g_hat, op, "g_hat");
  check_same_device(W, g_hat, op);
  check_same_dtype(W, g_hat, op);
  check_same_shape(W, g_hat, op);
  const int64_t channels = channels_of(W, spec);
  MQ_CHECK(scale.defined() && scale.numel() == channels && scale.dtype() == W.dtype() &&
               scale.device() == W.device(),
           "{}: scale must be {} {} on {}, got {}", op, channels, dtype_name(W.dtype()),
           W.device().str(), scale.defined() ? scale.describe() : "undefined");
  Tensor g_w = Tensor::empty(W.shape(), W.dtype(), W.device());
  on_device(
      W, op,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::quantize_backward_cpu<T>(spec.kind, W.data<T>(), g_hat.data<T>(),
                                          scale.data<T>(), W.numel(), channels, g_w.data<T>());
      },
      [&](auto stream) {
        kernels::quantize_backward_cuda(spec.kind, W.data<float>(), g_hat.data<float>(),
                                        scale.data<float>(), W.numel(), channels,
                                        g_w.data<float>(), stream);
      });
  return g_w;
}

QuantizeResult quantize(const Tensor& W, QuantSpec spec) {
  const char* op = "quantize";
  check_weight(W, op);
  validate(spec);
  const int bits = kernel_bits(spec);
  const int64_t channels = channels_of(W, spec);
  kernels::check_quantize_args(spec.kind, bits, W.numel(), channels);
  QuantizeResult r;
  r.w_tilde_is_w = kernels::quantizer_info(spec.kind).w_tilde_is_w;
  r.w_tilde = r.w_tilde_is_w ? W.detach() : Tensor::empty(W.shape(), W.dtype(), W.device());
  Tensor w_hat = Tensor::empty(W.shape(), W.dtype(), W.device());
  r.scale = Tensor::empty({channels}, W.dtype(), W.device());
  // W~ = W needs no copy: the kernels skip a null w_tilde.
  const Tensor wt = r.w_tilde_is_w ? Tensor() : r.w_tilde;
  on_device(
      W, op,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::quantize_forward_cpu<T>(spec.kind, bits, W.data<T>(), W.numel(), channels,
                                         wt.data<T>(), w_hat.data<T>(), r.scale.data<T>());
      },
      [&](auto stream) {
        Tensor ws = workspace_for(spec.kind, channels, W.device());
        kernels::quantize_forward_cuda(spec.kind, bits, W.data<float>(), W.numel(), channels,
                                       wt.data<float>(), w_hat.data<float>(),
                                       r.scale.data<float>(), ws.data<uint8_t>(), stream);
      });
  Tensor saved_w = W.detach(), saved_scale = r.scale;
  r.w_hat = record(w_hat, "quantize", {W}, [saved_w, saved_scale, spec](const Tensor& g) {
    return std::vector<Tensor>{quantize_backward(saved_w, g, saved_scale, spec)};
  });
  return r;
}

Tensor calibration(const Tensor& W, QuantSpec spec) {
  const char* op = "calibration";
  check_weight(W, op);
  validate(spec);
  const int64_t channels = channels_of(W, spec);
  kernels::check_quantize_args(spec.kind, kernel_bits(spec), W.numel(), channels);
  Tensor c = Tensor::empty(W.shape(), W.dtype(), W.device());
  on_device(
      W, op,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::quantize_calibration_cpu<T>(spec.kind, W.data<T>(), W.numel(), channels,
                                             c.data<T>());
      },
      [&](auto stream) {
        Tensor ws = workspace_for(spec.kind, channels, W.device());
        kernels::quantize_calibration_cuda(spec.kind, W.data<float>(), W.numel(), channels,
                                           c.data<float>(), ws.data<uint8_t>(), stream);
      });
  return c;
}

}  // namespace mq
