// Harness cases of cross_entropy (mean of log-sum-exp minus the label's logit, i64 and i32
// labels) and count_correct (argmax hits, the first maximum wins).
#include <cmath>

#include "op_harness.h"

namespace mq::test {

namespace {

double row_max(const HostTensor& z, int64_t i) {
  const int64_t c = z.shape[1];
  double m = -INFINITY;
  for (int64_t j = 0; j < c; ++j) m = std::max(m, z[i * c + j]);
  return m;
}

HostTensor cross_entropy_ref(const HostTensor& z, const HostTensor& labels, double scale) {
  const int64_t n = z.shape[0], c = z.shape[1];
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double m = row_max(z, i);
    double s = 0;
    for (int64_t j = 0; j < c; ++j) s += std::exp(z[i * c + j] - m);
    total += m + std::log(s) - z[i * c + static_cast<int64_t>(labels[i])];
  }
  return {{}, {scale * total / n}};
}

HostTensor count_correct_ref(const HostTensor& z, const HostTensor& labels) {
  const int64_t n = z.shape[0], c = z.shape[1];
  double hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j)
      if (z[i * c + j] > z[i * c + best]) best = j;
    hits += best == static_cast<int64_t>(labels[i]);
  }
  return {{}, {hits}};
}

// `scale` multiplies the loss (the upstream gradient then is not 1).
OpCase& add_cross_entropy(OpRegistry& r, Input logits, Input lab, const std::string& what,
                          double scale = 1.0) {
  OpCase& c = r.add("cross_entropy", what);
  c.build = from_inputs({logits.grad(), lab}, [scale](const std::vector<Tensor>& in) {
    Tensor loss = cross_entropy(in[0], in[1]);
    return std::vector<Tensor>{scale == 1.0 ? loss : mul_scalar(loss, scale)};
  });
  c.reference = [scale](const HostTensors& in, DType) {
    return std::vector<Expected>{cross_entropy_ref(in[0], in[1], scale)};
  };
  c.f32_tol = {0, 1e-5};
  c.f64_tol = {0, 1e-12};
  if (shape_numel(logits.shape) <= 20) c.gradcheck = kGradCheckTol;
  return c;
}

OpCase& add_count_correct(OpRegistry& r, Input logits, Input lab, const std::string& what) {
  OpCase& c = r.add("count_correct", what);
  c.build = from_inputs({logits, lab}, [](const std::vector<Tensor>& in) {
    // A count on the logits' device, so both devices' results compare as tensors.
    const double hits = static_cast<double>(count_correct(in[0], in[1]));
    return std::vector<Tensor>{Tensor::scalar(hits, DType::f32).to(in[0].device())};
  });
  c.reference = [](const HostTensors& in, DType) {
    return std::vector<Expected>{count_correct_ref(in[0], in[1])};
  };
  c.f32_tol = c.f64_tol = c.cuda_tol = {0, 0};
  return c;
}

std::vector<int64_t> spread_labels(int64_t n, int64_t classes) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = (i * 7 + 3) % classes;
  return v;
}

}  // namespace

void add_loss_cases(OpRegistry& r) {
  for (DType ld : {DType::i64, DType::i32}) {
    const std::string t = std::string(" ") + dtype_name(ld) + " labels";
    add_cross_entropy(r, normal({5, 7}, 101, 3.0), labels({0, 6, 3, 3, 1}, ld), "5x7" + t);
    // One class to many, CUDA's block sizes.
    for (auto [n, c] : {std::pair{1, 2}, std::pair{8, 10}, std::pair{128, 10}, std::pair{37, 100},
                        std::pair{4, 1000}}) {
      const std::string what = fmt::format("{}x{}{}", n, c, t);
      add_cross_entropy(r, normal({n, c}, 71, 3.0), labels(spread_labels(n, c), ld), what);
      add_count_correct(r, normal({n, c}, 72), labels(spread_labels(n, c), ld), what);
    }
  }
  add_cross_entropy(r, normal({4, 3}, 111, 2.0), labels({2, 0, 1, 2}), "4x3 i64 labels");
  add_cross_entropy(r, normal({2, 5}, 112), labels({1, 4}, DType::i32), "2x5 i32 labels, loss x3",
                    3.0);
  // Large logits stay finite (stable log-softmax); ties pick the first maximum.
  const Input big = values({1000, -1000, 999, 5, 5, 1}, {2, 3});
  // (finite differences of a loss near 1000 lose the digits the check needs)
  add_cross_entropy(r, big, labels({0, 0}), "large logits 2x3").gradcheck.reset();
  add_count_correct(r, big, labels({0, 0}), "large logits and a tie 2x3");
  r.no_gradcheck("count_correct", "a count, no gradient");

  // perf: a batch of 1024 over 1000 classes.
  for (OpCase* c : {&add_cross_entropy(r, normal({1024, 1000}, 1),
                                       labels(spread_labels(1024, 1000)), "1024x1000"),
                     &add_count_correct(r, normal({1024, 1000}, 2),
                                        labels(spread_labels(1024, 1000)), "1024x1000")}) {
    c->reference = nullptr;
    c->cuda = false;
    c->gradcheck.reset();
    c->perf = true;
    c->perf_bytes = 4.0 * 1024 * 1000;
  }
}

}  // namespace mq::test
