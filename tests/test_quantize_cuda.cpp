// CUDA quantizer errors. Its values (identical codes; W~, scales, STE gradients and calibration
// within 1e-6 relative of the CPU's) are the op harness's cuda mode (tests/op_cases_quantize.cpp).
#include "tests/quant_specs.h"
#include "models/quantize_op.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;

TEST_CASE("CUDA quantize rejects f64 and bad bits", "[quantize][cuda]") {
  if (!cuda_available_or_skip()) return;
  Tensor W = randn({8}, 1, DType::f32).to(Device::cuda(0));
  REQUIRE_THROWS_WITH(quantize(W, {Quantizer::dorefa, kernels::kMaxDorefaBits + 1}),
                      Catch::Contains(test::dorefa_bits_hint()));
  REQUIRE_THROWS_WITH(quantize(randn({8}, 1, DType::f64).to(Device::cuda(0)), {}),
                      Catch::Contains("f32"));
}
