#include "op_test.h"

#include <cmath>

#include "engine/cuda/cuda_api.h"

namespace mq::test {

std::string CloseReport::str() const {
  if (ok) return "ok";
  return fmt::format("worst element [{}]: actual {} expected {} (|diff| {:.3g})", index, a, b,
                     std::abs(a - b));
}

std::vector<double> to_doubles(const Tensor& t) { return t.to(DType::f64).to_vector<double>(); }

CloseReport compare(const Tensor& actual, const Tensor& expected, double atol, double rtol) {
  CloseReport r;
  if (actual.shape() != expected.shape()) {
    r.ok = false;
    return r;
  }
  auto a = to_doubles(actual), b = to_doubles(expected);
  r.worst = -INFINITY;
  for (size_t i = 0; i < a.size(); ++i) {
    double excess = std::abs(a[i] - b[i]) - (atol + rtol * std::abs(b[i]));
    if (std::isnan(a[i]) != std::isnan(b[i])) excess = INFINITY;
    if (excess > r.worst) {
      r.worst = excess;
      r.index = static_cast<int64_t>(i);
      r.a = a[i];
      r.b = b[i];
    }
  }
  r.ok = a.empty() || r.worst <= 0;
  return r;
}

void require_close(const Tensor& actual, const Tensor& expected, double atol, double rtol,
                   const std::string& what) {
  INFO(what << ": actual " << actual.describe() << " expected " << expected.describe());
  REQUIRE(actual.shape() == expected.shape());
  CloseReport r = compare(actual, expected, atol, rtol);
  INFO(r.str());
  REQUIRE(r.ok);
}

Tensor randn(const Shape& shape, uint64_t seed, DType dtype, double scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<double> v(shape_numel(shape));
  for (auto& x : v) x = dist(rng);
  return Tensor::from_vector(v, shape).to(dtype);
}

Tensor uniform(const Shape& shape, uint64_t seed, double lo, double hi, DType dtype) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(shape_numel(shape));
  for (auto& x : v) x = dist(rng);
  return Tensor::from_vector(v, shape).to(dtype);
}

void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
               std::vector<Tensor> inputs, const std::string& what, double tol, double eps) {
  for (auto& t : inputs) REQUIRE(t.dtype() == DType::f64);
  Tensor probe;
  {
    NoGradGuard ng;
    Tensor y = f(inputs);
    probe = randn(y.shape(), 4242, DType::f64);
  }
  for (auto& t : inputs)
    if (t.requires_grad()) t.zero_grad();
  Tensor loss = sum(mul(f(inputs), probe));
  loss.backward();

  NoGradGuard ng;
  auto objective = [&]() { return sum(mul(f(inputs), probe)).item(); };
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    REQUIRE(x.grad().defined());
    auto analytic = to_doubles(x.grad());
    double* p = x.data<double>();
    double worst = 0;
    int64_t worst_i = -1;
    double worst_a = 0, worst_n = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      double keep = p[i];
      p[i] = keep + eps;
      double up = objective();
      p[i] = keep - eps;
      double down = objective();
      p[i] = keep;
      double numeric = (up - down) / (2 * eps);
      double err = std::abs(analytic[i] - numeric) / (1 + std::abs(numeric));
      if (err > worst) {
        worst = err;
        worst_i = i;
        worst_a = analytic[i];
        worst_n = numeric;
      }
    }
    INFO(what << ": input " << k << " " << x.describe() << " worst element [" << worst_i
              << "] analytic " << worst_a << " numeric " << worst_n << " (rel err " << worst
              << ")");
    REQUIRE(worst <= tol);
  }
}

bool cuda_available_or_skip() {
  if (cuda::device_count() > 0) return true;
  WARN("skipped: no CUDA device");
  return false;
}

}  // namespace mq::test
