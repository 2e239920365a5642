// batch_norm_relu (engine/ops.h): the fused training pass gives bit for bit what batch_norm, add
// and relu give one after another, forward (output and running statistics) and backward (every
// gradient), at 1 and 2 threads; where it is not fused it is those ops.
#include <omp.h>

#include <random>
#include <string>

#include "op_test.h"
#include "test_data_util.h"

using namespace mq;
using namespace mq::test;

namespace {
Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (double& x : v) x = u(rng);
  // Some exact repeats and zeros, so that some normalized values land on 0 (the ReLU's edge).
  for (size_t i = 0; i < v.size(); i += 7) v[i] = 0.25;
  return Tensor::from_vector(v, shape).to(dtype);
}

struct Outcome {
  Tensor y, running_mean, running_var, gx, gw, gb, gr;
};

Outcome run(bool fused, DType dtype, const Shape& shape, bool with_residual, bool training) {
  std::mt19937 rng(7);
  const int64_t c = shape[1];
  Tensor x = random_tensor(shape, dtype, rng, -2, 2).set_requires_grad();
  Tensor w = random_tensor({c}, dtype, rng, -1.5, 1.5).set_requires_grad();
  Tensor b = random_tensor({c}, dtype, rng, -0.5, 0.5).set_requires_grad();
  Tensor r = with_residual ? random_tensor(shape, dtype, rng, -1, 1).set_requires_grad() : Tensor();
  Tensor upstream = random_tensor(shape, dtype, rng, -1, 1);
  Outcome o;
  o.running_mean = random_tensor({c}, dtype, rng, -0.1, 0.1);
  o.running_var = random_tensor({c}, dtype, rng, 0.5, 1.5);
  const BatchNormParams p{training, 0.1, 1e-5};
  if (fused) {
    o.y = batch_norm_relu(x, w, b, o.running_mean, o.running_var, p, r);
  } else {
    Tensor y = batch_norm(x, w, b, o.running_mean, o.running_var, p);
    o.y = relu(with_residual ? add(y, r) : y);
  }
  sum(mul(o.y, upstream)).backward();
  o.gx = x.grad();
  o.gw = w.grad();
  o.gb = b.grad();
  if (with_residual) o.gr = r.grad();
  return o;
}
}  // namespace

TEST_CASE("batch_norm_relu: bit for bit batch_norm, add and relu", "[nn]") {
  const int saved = omp_get_max_threads();
  const Shape shapes[] = {{4, 3, 5, 6}, {2, 16, 8, 8}, {3, 4, 2, 2}, {2, 3, 16, 16}};
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (DType dtype : {DType::f32, DType::f64})
      for (const Shape& shape : shapes)
        for (bool with_residual : {false, true})
          for (bool training : {true, false}) {
            INFO(dtype_name(dtype) << " " << shape_str(shape)
                                   << (with_residual ? " + residual" : "")
                                   << (training ? " train" : " eval") << ", threads " << threads);
            const Outcome a = run(false, dtype, shape, with_residual, training);
            const Outcome b = run(true, dtype, shape, with_residual, training);
            CHECK(same_bytes(a.y, b.y));
            CHECK(same_bytes(a.running_mean, b.running_mean));
            CHECK(same_bytes(a.running_var, b.running_var));
            CHECK(same_bytes(a.gx, b.gx));
            CHECK(same_bytes(a.gw, b.gw));
            CHECK(same_bytes(a.gb, b.gb));
            if (with_residual) CHECK(same_bytes(a.gr, b.gr));
          }
  }
  omp_set_num_threads(saved);
}

TEST_CASE("batch_norm_relu: the ReLU zeroes, the residual gets the masked gradient", "[nn]") {
  // One channel, x = [-1, 1] normalized to [-1, 1] (weight 1, bias 0): the first is cut.
  Tensor x = Tensor::from_vector<float>({-1, 1, -1, 1}, {2, 1, 1, 2}).set_requires_grad();
  Tensor w = Tensor::full({1}, 1.0).set_requires_grad(), b = Tensor::zeros({1});
  Tensor rm = Tensor::zeros({1}), rv = Tensor::full({1}, 1.0);
  Tensor r = Tensor::zeros({2, 1, 1, 2}).set_requires_grad();
  Tensor y = batch_norm_relu(x, w, b, rm, rv, {true, 0.1, 1e-5}, r);
  const std::vector<float> v = y.to_vector<float>();
  CHECK(v[0] == 0.0f);
  CHECK(v[2] == 0.0f);
  CHECK(v[1] == Approx(1.0).epsilon(1e-4));
  sum(y).backward();
  CHECK(r.grad().to_vector<float>() == std::vector<float>{0, 1, 0, 1});
}

TEST_CASE("batch_norm_relu: the residual's gradient alone, x constant", "[nn]") {
  std::mt19937 rng(3);
  Tensor x = random_tensor({2, 4, 3, 3}, DType::f32, rng, -2, 2);
  Tensor w = random_tensor({4}, DType::f32, rng, -1, 1), b = random_tensor({4}, DType::f32, rng, -1, 1);
  Tensor upstream = random_tensor(x.shape(), DType::f32, rng, -1, 1);
  Tensor grads[2];
  for (int fused = 0; fused < 2; ++fused) {
    Tensor rm = Tensor::zeros({4}), rv = Tensor::full({4}, 1.0);
    rng.seed(11);  // the same residual both times
    Tensor r = random_tensor(x.shape(), DType::f32, rng, -1, 1).set_requires_grad();
    Tensor y = fused ? batch_norm_relu(x, w, b, rm, rv, {}, r)
                     : relu(add(batch_norm(x, w, b, rm, rv, {}), r));
    sum(mul(y, upstream)).backward();
    grads[fused] = r.grad();
  }
  REQUIRE(grads[1].defined());
  CHECK(same_bytes(grads[0], grads[1]));
}

TEST_CASE("batch_norm_relu rejects a residual of another shape", "[nn]") {
  Tensor x = Tensor::zeros({2, 3, 4, 4}), rm = Tensor::zeros({3}), rv = Tensor::full({3}, 1.0);
  REQUIRE_THROWS_WITH(batch_norm_relu(x, Tensor(), Tensor(), rm, rv, {}, Tensor::zeros({2, 3, 4, 5})),
                      Catch::Contains("residual"));
  REQUIRE_THROWS_WITH(
      batch_norm_relu(x, Tensor(), Tensor(), rm, rv, {}, Tensor::zeros({2, 3, 4, 4}, DType::f64)),
      Catch::Contains("dtype"));
}
