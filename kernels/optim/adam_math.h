#pragma once
// Per-element Adam math, shared by the CPU loop and a future CUDA kernel. The order of the
// roundings follows PyTorch 1.13's single-tensor Adam on float tensors (mul_, add_, addcmul_,
// sqrt, div, add_, addcdiv_), with every scalar rounded to T first as PyTorch does. ATen's
// add_(x, alpha) is one fused multiply-add (vec::fmadd); its mul/addcmul/addcdiv are separately
// rounded products, so the host caller compiles this with fp-contract=off and the FMAs below are
// explicit (std::fma). Float32 Adam amplifies these last-bit differences (it normalizes tiny
// gradients), so the golden traces need PyTorch's exact order.
#include <cmath>

#include "kernels/base/host_device.h"

namespace mq::optim {

template <class T>
struct AdamScalars {
  T beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay;
  T step_size;       // step(): lr / bc1;        refine(): sqrt(bc2) / bc1
  T bc2_sqrt;        // step(): sqrt(bc2);       refine(): unused
};

// Advances the moments of one element and returns its (possibly decayed) gradient.
template <class T>
MQ_HD inline void adam_moments(T& g, T p, T& m, T& v, const AdamScalars<T>& s) {
  using std::fma;
  if (s.weight_decay != T(0)) g = fma(p, s.weight_decay, g);  // grad.add(p, alpha=wd)
  m = m * s.beta1;                                             // exp_avg.mul_(beta1)
  m = fma(g, s.one_minus_beta1, m);                            //   .add_(g, alpha=1-beta1)
  v = v * s.beta2;                                             // exp_avg_sq.mul_(beta2)
  v = v + (s.one_minus_beta2 * g) * g;                         //   .addcmul_(g, g, 1-beta2)
}

// step(): p += -step_size * m / (sqrt(v) / sqrt(bc2) + eps)
template <class T>
MQ_HD inline T adam_step(T p, T m, T v, const AdamScalars<T>& s) {
  T denom = std::sqrt(v) / s.bc2_sqrt + s.eps;
  return p + ((-s.step_size) * m) / denom;  // p.addcdiv_(m, denom, value=-step_size)
}

// refine(): d = step_size * m / (sqrt(v) + eps)   (MetaQuant's eps placement)
template <class T>
MQ_HD inline T adam_refined(T m, T v, const AdamScalars<T>& s) {
  return (s.step_size * m) / (std::sqrt(v) + s.eps);
}

}  // namespace mq::optim
