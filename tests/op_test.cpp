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

std::string check_gradients(const MultiFn& f, std::vector<Tensor> inputs, double tol, double eps,
                            const MultiFn& numeric) {
  for (auto& t : inputs)
    if (t.requires_grad() && t.dtype() != DType::f64)
      return "gradient check needs f64 inputs, got " + t.describe();
  // Analytic: one backward of the objective.
  std::vector<Tensor> ys = f(inputs);
  std::vector<size_t> differentiable;
  std::vector<Tensor> probes(ys.size());
  Tensor loss;
  for (size_t k = 0; k < ys.size(); ++k) {
    if (!ys[k].defined() || !ys[k].requires_grad()) continue;
    differentiable.push_back(k);
    probes[k] = randn(ys[k].shape(), 4242 + k, DType::f64);
    Tensor term = sum(mul(ys[k], probes[k]));
    loss = loss.defined() ? add(loss, term) : term;
  }
  if (!loss.defined()) return "no output has autograd history";
  for (auto& t : inputs)
    if (t.requires_grad()) t.zero_grad();
  loss.backward();
  // Read every gradient before the numeric forwards (a forward may set .grad).
  std::vector<std::vector<double>> analytic(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].requires_grad()) continue;
    if (!inputs[k].grad().defined())
      return fmt::format("input {} {}: no gradient", k, inputs[k].describe());
    analytic[k] = to_doubles(inputs[k].grad());
  }

  NoGradGuard ng;
  const MultiFn& g = numeric ? numeric : f;
  auto objective = [&]() {
    std::vector<Tensor> y = g(inputs);
    double total = 0;
    for (size_t k : differentiable) total += sum(mul(y[k], probes[k])).item();
    return total;
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
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
      double numeric_d = (up - down) / (2 * eps);
      double err = std::abs(analytic[k][i] - numeric_d) / (1 + std::abs(numeric_d));
      if (std::isnan(err)) err = INFINITY;
      if (err > worst) {
        worst = err;
        worst_i = i;
        worst_a = analytic[k][i];
        worst_n = numeric_d;
      }
    }
    if (worst > tol)
      return fmt::format("input {} {}: worst element [{}] analytic {} numeric {} (rel err {:.3g} > {})",
                         k, x.describe(), worst_i, worst_a, worst_n, worst, tol);
  }
  return "";
}

void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
               std::vector<Tensor> inputs, const std::string& what, double tol, double eps) {
  for (auto& t : inputs) REQUIRE(t.dtype() == DType::f64);
  const std::string failure = check_gradients(
      [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in)}; }, std::move(inputs),
      tol, eps);
  INFO(what << ": " << failure);
  REQUIRE(failure.empty());
}

bool cuda_available_or_skip() {
  if (cuda::device_count() > 0) return true;
  WARN("skipped: no CUDA device");
  return false;
}

}  // namespace mq::test
