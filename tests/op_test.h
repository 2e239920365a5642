#pragma once
// The shared op-test harness: closeness checks that report the worst element, random tensors,
// and a finite-difference gradient check in double precision.
#include <catch2/catch.hpp>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace mq::test {

// Named tolerances.
constexpr double kGradCheckEps = 1e-6;      // central-difference step (f64)
constexpr double kGradCheckTol = 1e-6;      // |analytic - numeric| <= tol * (1 + |numeric|)
constexpr double kF32Rel = 1e-5;            // float forward vs plain formula
constexpr double kF32Abs = 1e-5;
constexpr double kF64Tol = 1e-10;           // f64 backend vs f64 plain loops (abs and rel)
// f32 conv/GEMM sums hundreds of products: relative error grows with the depth of the sum.
constexpr double kF32SumAbs = 1e-4;
constexpr double kF32SumRel = 1e-4;
constexpr double kCudaAbs = 1e-5;           // CUDA f32 vs CPU f32: absolute ...
constexpr double kCudaRel = 1e-4;           // ... plus relative

struct CloseReport {
  bool ok = true;
  double worst = 0;  // worst |a - b| - (atol + rtol |b|)
  int64_t index = -1;
  double a = 0, b = 0;
  std::string str() const;
};

// |a - b| <= atol + rtol * |b| elementwise; both converted to f64 on the host.
CloseReport compare(const Tensor& actual, const Tensor& expected, double atol, double rtol);

// Catch assertion with a message naming the worst element.
void require_close(const Tensor& actual, const Tensor& expected, double atol, double rtol,
                   const std::string& what = "");

// Deterministic random tensors.
Tensor randn(const Shape& shape, uint64_t seed, DType dtype = DType::f64, double scale = 1.0);
Tensor uniform(const Shape& shape, uint64_t seed, double lo, double hi, DType dtype = DType::f64);
std::vector<double> to_doubles(const Tensor& t);

// f(inputs) -> outputs; the outputs with autograd history are the differentiated ones.
using MultiFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

// Checks the autograd gradient through `f` of sum_k sum(y_k * R_k), over the outputs y_k with
// history (R_k fixed random, so every output element matters), against central differences of
// the same objective through `numeric` (f when empty: a surrogate when the backward is by design
// the derivative of another function, as the STE), for every f64 input that requires grad.
// Gradients are cleared after each forward (an op may read .grad there). Returns "" when every
// element is within tol * (1 + |numeric|), else the worst element of the first failing input.
std::string check_gradients(const MultiFn& f, std::vector<Tensor> inputs, double tol = kGradCheckTol,
                            double eps = kGradCheckEps, const MultiFn& numeric = {});

// check_gradients of a one-output f as a Catch assertion.
void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
               std::vector<Tensor> inputs, const std::string& what,
               double tol = kGradCheckTol, double eps = kGradCheckEps);

// True when a CUDA device is usable; otherwise prints "skipped: no CUDA device" once per test.
bool cuda_available_or_skip();

}  // namespace mq::test
