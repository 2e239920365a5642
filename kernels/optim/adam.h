#pragma once
// Adam on the GPU: one fused pass over (p, g, m, v) per parameter, using the per-element math
// of kernels/optim/adam_math.h (the CPU loop's too), so both devices round alike.
#include <cstdint>

#include "kernels/optim/adam_math.h"

namespace mq::kernels {

// step(): p updated in place; refine(): out = refined direction (p untouched).
void adam_cuda(float* p, const float* g, float* m, float* v, float* out, int64_t n,
               const optim::AdamScalars<float>& s, bool refine_only, void* stream);

}  // namespace mq::kernels
