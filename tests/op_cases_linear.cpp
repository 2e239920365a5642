// Harness cases of matmul, linear (with and without bias, weight-only gradients) and
// global_avg_pool: plain loops in double.
#include "op_harness.h"

namespace mq::test {

namespace {

// a [m, k] @ b [k, n], or a @ b^T with b [n, k] when transpose_b.
HostTensor gemm_ref(const HostTensor& a, const HostTensor& b, bool transpose_b) {
  const int64_t m = a.shape[0], k = a.shape[1], n = transpose_b ? b.shape[0] : b.shape[1];
  HostTensor y{{m, n}, std::vector<double>(m * n, 0.0)};
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t l = 0; l < k; ++l) s += a[i * k + l] * b[transpose_b ? j * k + l : l * n + j];
      y.v[i * n + j] = s;
    }
  return y;
}

HostTensor transposed(const HostTensor& a) {
  const int64_t r = a.shape[0], c = a.shape[1];
  HostTensor t{{c, r}, std::vector<double>(a.v.size())};
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) t.v[j * r + i] = a[i * c + j];
  return t;
}

// Products large enough for the multithreaded GEMM path, degenerate ones, odd ones.
struct Mkn {
  int64_t m, k, n;
  std::string str() const { return fmt::format("{}x{}x{}", m, k, n); }
};
const std::vector<Mkn> kSizes = {{1, 1, 1},   {3, 5, 2},    {3, 4, 5},    {5, 7, 3},
                                 {7, 64, 10}, {64, 33, 70}, {128, 64, 10}, {3, 200, 1},
                                 {200, 150, 120}};
constexpr int64_t kGradcheckMaxElements = 64;

// A perf case times the product only: no reference, no CUDA comparison. True for one.
bool perf_only(OpCase& c, Mkn s, bool perf) {
  c.perf = perf;
  c.perf_flops = 2.0 * s.m * s.k * s.n;
  if (perf) c.cuda = false;
  return perf;
}

void add_matmul(OpRegistry& r, Mkn s, bool perf = false) {
  OpCase& c = r.add("matmul", s.str());
  c.build = from_inputs({normal({s.m, s.k}, 41).grad(), normal({s.k, s.n}, 42).grad()},
                        [](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{matmul(in[0], in[1])};
                        });
  c.f32_tol = {kF32SumAbs, kF32SumRel};
  if (perf_only(c, s, perf)) return;
  c.reference = [](const HostTensors& in, DType) {
    return std::vector<Expected>{gemm_ref(in[0], in[1], false)};
  };
  // ga = gy b^T, gb = a^T gy
  c.grad_reference = [](const HostTensors& in, const HostTensors& gy, DType) {
    return std::vector<Expected>{gemm_ref(gy[0], in[1], true),
                                 gemm_ref(transposed(in[0]), gy[0], false)};
  };
  if (s.m * s.k + s.k * s.n <= kGradcheckMaxElements) c.gradcheck = kGradCheckTol;
}

// linear(x [m, k], weight [n, k], bias [n] or none); `params_only`: x and bias without grad.
void add_linear(OpRegistry& r, Mkn s, bool with_bias, bool weight_only, bool perf = false) {
  OpCase& c = r.add("linear", s.str() + (with_bias ? " bias" : " no bias") +
                                  (weight_only ? " (weight grad only)" : ""));
  std::vector<Input> in{normal({s.m, s.k}, 41).grad(!weight_only),
                        normal({s.n, s.k}, 44).grad()};
  if (with_bias) in.push_back(normal({s.n}, 43).grad(!weight_only));
  c.build = from_inputs(in, [with_bias](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{linear(in[0], in[1], with_bias ? in[2] : Tensor())};
  });
  c.f32_tol = {kF32SumAbs, kF32SumRel};
  if (perf_only(c, s, perf)) return;
  c.reference = [with_bias](const HostTensors& in, DType) {
    HostTensor y = gemm_ref(in[0], in[1], true);
    if (with_bias)
      for (size_t i = 0; i < y.v.size(); ++i) y.v[i] += in[2][i % in[2].v.size()];
    return std::vector<Expected>{y};
  };
  // gx = gy W, gW = gy^T x, gb = column sums of gy
  c.grad_reference = [with_bias, weight_only](const HostTensors& in, const HostTensors& gy, DType) {
    std::vector<Expected> g;
    if (!weight_only) g.emplace_back(gemm_ref(gy[0], transposed(in[1]), true));
    g.emplace_back(gemm_ref(transposed(gy[0]), transposed(in[0]), true));
    if (with_bias && !weight_only) {
      const int64_t n = gy[0].shape[1];
      HostTensor gb{{n}, std::vector<double>(n, 0.0)};
      for (size_t i = 0; i < gy[0].v.size(); ++i) gb.v[i % n] += gy[0][i];
      g.emplace_back(gb);
    }
    return g;
  };
  if (s.m * s.k + s.n * s.k + s.n <= kGradcheckMaxElements) c.gradcheck = kGradCheckTol;
}

}  // namespace

void add_linear_cases(OpRegistry& r) {
  for (Mkn s : kSizes) {
    add_matmul(r, s);
    add_linear(r, s, true, false);
    add_linear(r, s, false, false);
  }
  add_linear(r, {4, 6, 3}, true, false);
  add_linear(r, {2, 5, 4}, false, false);
  add_linear(r, {2, 5, 4}, true, true);
  add_matmul(r, {512, 512, 512}, true);
  add_linear(r, {256, 1024, 1024}, true, false, true);

  // global_avg_pool: x [N, C, H, W] -> [N, C], the mean of each plane.
  for (Shape s : {Shape{3, 4, 5, 6}, Shape{2, 3, 4, 3}, Shape{2, 3, 4, 4}, Shape{5, 64, 8, 8},
                  Shape{1, 1, 1, 1}, Shape{3, 2, 7, 9}, Shape{128, 64, 8, 8}}) {
    OpCase& c = r.add("global_avg_pool", shape_str(s));
    c.build = from_inputs({normal(s, 61).grad()}, [](const std::vector<Tensor>& in) {
      return std::vector<Tensor>{global_avg_pool(in[0])};
    });
    c.reference = [](const HostTensors& in, DType) {
      const int64_t planes = in[0].shape[0] * in[0].shape[1], hw = in[0].numel() / planes;
      HostTensor y{{in[0].shape[0], in[0].shape[1]}, std::vector<double>(planes)};
      for (int64_t i = 0; i < planes; ++i) {
        double s = 0;
        for (int64_t j = 0; j < hw; ++j) s += in[0][i * hw + j];
        y.v[i] = s / hw;
      }
      return std::vector<Expected>{y};
    };
    if (shape_numel(s) <= 100) c.gradcheck = kGradCheckTol;
    c.perf = s == Shape{128, 64, 8, 8};
    c.perf_bytes = 4.0 * shape_numel(s);
  }
}

}  // namespace mq::test
