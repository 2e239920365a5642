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

// Checks d(sum(f(inputs) * R))/d(input) against central differences for every input that
// requires grad, R a fixed random tensor (so every output element matters).
void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
               std::vector<Tensor> inputs, const std::string& what,
               double tol = kGradCheckTol, double eps = kGradCheckEps);

// True when a CUDA device is usable; otherwise prints "skipped: no CUDA device" once per test.
bool cuda_available_or_skip();

}  // namespace mq::test
