#pragma once
// Eval-mode batch norm as a per-channel affine y = fma(x, scale[c], shift[c]), with scale and
// shift formed as ATen does: invstd = 1 / sqrt(running_var + T(eps)) in T, scale = invstd * w,
// shift = bias - running_mean * scale (fused). Shared by the batch norm op and the conv's fused
// inference epilogue, so both give the same bits.
#include <cmath>
#include <cstdint>

#include "kernels/base/float_math.h"

namespace mq::cpu {

// w and b may be null (affine off).
template <class T>
void bn_eval_affine(const T* w, const T* b, const T* running_mean, const T* running_var,
                    double eps, int64_t channels, T* scale, T* shift) {
  for (int64_t c = 0; c < channels; ++c) {
    const T invstd = T(1) / std::sqrt(running_var[c] + T(eps));
    scale[c] = invstd * (w ? w[c] : T(1));
    shift[c] = kernels::fma_of(-running_mean[c], scale[c], b ? b[c] : T(0));
  }
}

}  // namespace mq::cpu
