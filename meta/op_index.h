#pragma once
// The index of every op of mq, wherever it lives: the engine's (engine/ops.h), the weight
// quantizer (models/quantize_op.h) and the meta-network ops (meta/meta_op.h,
// meta/quantized_layers.h). Each op has one entry point that validates its arguments, allocates
// its outputs, runs its CPU or CUDA compute through on_device() (engine/dispatch.h) and records
// its backward (engine/autograd.h). docs/architecture.md "Adding an op" walks the path.
//
// MQ_FOR_EACH_OP(X) calls X(name, header) once per op; tests/op_harness.cpp requires a harness
// entry (formula, gradient check, CUDA against CPU, perf) for every name listed here.
#include "engine/ops.h"
#include "meta/meta_op.h"
#include "meta/quantized_layers.h"
#include "models/quantize_op.h"

#define MQ_FOR_EACH_OP(X)                        \
  /* elementwise: engine/ops_elementwise.cpp */  \
  X(add, "engine/ops.h")                         \
  X(sub, "engine/ops.h")                         \
  X(mul, "engine/ops.h")                         \
  X(add_scalar, "engine/ops.h")                  \
  X(mul_scalar, "engine/ops.h")                  \
  X(neg, "engine/ops.h")                         \
  X(relu, "engine/ops.h")                        \
  X(hardtanh, "engine/ops.h")                    \
  X(tanh, "engine/ops.h")                        \
  X(abs, "engine/ops.h")                         \
  X(sign, "engine/ops.h")                        \
  X(stop_gradient, "engine/ops.h")               \
  X(add_inplace, "engine/ops.h")                 \
  X(axpy_inplace, "engine/ops.h")                \
  /* reductions: engine/ops_reduce.cpp */        \
  X(sum, "engine/ops.h")                         \
  X(mean, "engine/ops.h")                        \
  X(max_abs, "engine/ops.h")                     \
  /* neural-network ops: engine/ops_*.cpp */     \
  X(conv2d, "engine/ops.h")                      \
  X(matmul, "engine/ops.h")                      \
  X(linear, "engine/ops.h")                      \
  X(global_avg_pool, "engine/ops.h")             \
  X(max_pool2d, "engine/ops.h")                  \
  X(batch_norm, "engine/ops.h")                  \
  X(conv2d_bn_eval, "engine/ops.h")              \
  X(cross_entropy, "engine/ops.h")               \
  X(count_correct, "engine/ops.h")               \
  /* the weight quantizer: models/quantize_op.cpp */ \
  X(quantize, "models/quantize_op.h")            \
  X(quantize_backward, "models/quantize_op.h")   \
  X(calibration, "models/quantize_op.h")         \
  /* MetaQuant: meta/meta_op.cpp, meta/quantized_layers.cpp */ \
  X(meta_gradient, "meta/meta_op.h")             \
  X(split_gradient, "meta/meta_op.h")            \
  X(metaquant_weight, "meta/quantized_layers.h") \
  X(metaquant_bias, "meta/quantized_layers.h")
