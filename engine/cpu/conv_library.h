#pragma once
// Which implementation runs each f32 CPU convolution pass: mq's own kernels (conv.cpp) or
// oneDNN (Debian's libdnnl, the library PyTorch's CPU convolutions run on; conv_onednn.cpp).
// The defaults follow the per-pass measurements in benchmarks/README.md (`conv_bench
// --library`, `roofline`):
//   backward weight: oneDNN for >= 16 input channels (faster on every such ResNet20 shape),
//                    on fixed groups of images so the sum does not depend on the thread count.
//                    ResNet's first conv (3 input channels) keeps mq's: oneDNN would save
//                    0.5 ms a step there, and with it the 3-step test of mpirun -np 4 against
//                    --accumulate 4 drifted past the golden rule (conv1 weights 1.4e-4 apart);
//   backward input:  mq's own (oneDNN's is faster on the 3x3 convs, but its summation order
//                    flips the sign of a final weight in the golden case
//                    metaquant-bwn-adam-MultiFC beyond the golden rule);
//   forward:         oneDNN for strided convs with >= 32 output channels and kernels wider
//                    than 1x1 when it runs its AVX-512 kernel, whose sums are bit for bit the
//                    order mq's kernel reproduces (the golden traces are PyTorch runs on that
//                    kernel; tests/test_conv_order.cpp checks it); mq's own otherwise (faster
//                    for 16 output channels, 1x1, and, on AVX-512 builds, "same" stride-1
//                    convs, which it reads through masked rows; on AVX2 machines the only one
//                    that keeps that order). Training and the fused eval forward alike.
#include <cstdint>

#include "engine/ops.h"

namespace mq::cpu {

enum class ConvPass { forward, backward_input, backward_weight };
enum class ConvLibrary { own, onednn };

// True when the build found oneDNN (-DMQ_DNNL=AUTO|ON).
bool onednn_built();
// True when oneDNN runs its AVX-512 f32 convolution kernels on this machine (DNNL_MAX_CPU_ISA
// may hold it lower).
bool onednn_avx512();

// The library a pass of a conv with C input channels, K output channels, an R x S kernel and
// parameters p runs on now. MQ_CPU_CONV=own|onednn (environment, read once) or set_conv_library() makes
// every pass run on one library (benchmarks compare them that way); otherwise the defaults.
ConvLibrary conv_library(ConvPass pass, int64_t c, int64_t k, int64_t r, int64_t s,
                         Conv2dParams p);
void set_conv_library(ConvLibrary lib);
void reset_conv_library();  // back to the defaults (or MQ_CPU_CONV's choice)
const char* conv_library_name(ConvLibrary lib);

// oneDNN's passes on plain NCHW / OIHW f32 tensors (data reordered to its blocked layouts and
// back inside). Return false, doing nothing, when oneDNN is not built in or the case is not
// one it takes (f64, grouped).
bool onednn_conv_forward(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p);
bool onednn_conv_backward_input(const Tensor& gy, const Tensor& w, Tensor& gx, Conv2dParams p);
bool onednn_conv_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Conv2dParams p);

}  // namespace mq::cpu
