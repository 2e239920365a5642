// Harness cases of max_pool2d: a plain window scan in double (first maximum in row-major order)
// and its scatter of the cotangent; odd shapes, overlapping windows, padding, ties.
#include <cmath>

#include "op_harness.h"

namespace mq::test {

namespace {

struct Pool {
  Shape x;
  MaxPool2dParams p;
  int64_t out(int64_t n) const { return (n + 2 * p.padding - p.kernel) / p.stride + 1; }
  std::string str() const {
    return fmt::format("{} kernel {} stride {} padding {}", shape_str(x), p.kernel, p.stride,
                       p.padding);
  }
};

// The chosen element of every window: flat index into x, planes included.
std::vector<int64_t> argmax_ref(const HostTensor& x, const Pool& s) {
  const int64_t planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3];
  const int64_t ph = s.out(h), pw = s.out(w);
  std::vector<int64_t> at;
  for (int64_t c = 0; c < planes; ++c)
    for (int64_t i = 0; i < ph; ++i)
      for (int64_t j = 0; j < pw; ++j) {
        int64_t best = -1;
        for (int64_t r = 0; r < s.p.kernel; ++r)
          for (int64_t q = 0; q < s.p.kernel; ++q) {
            const int64_t ih = i * s.p.stride - s.p.padding + r, iw = j * s.p.stride - s.p.padding + q;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
            const int64_t k = (c * h + ih) * w + iw;
            if (best < 0 || x[k] > x[best]) best = k;  // strictly greater: the first maximum
          }
        at.push_back(best);
      }
  return at;
}

OpCase& add_pool(OpRegistry& r, const Pool& s, Input x, bool gradcheck,
                 const std::string& note = "") {
  OpCase& c = r.add("max_pool2d", s.str() + note);
  const MaxPool2dParams p = s.p;
  c.build = from_inputs({x.grad()}, [p](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{max_pool2d(in[0], p)};
  });
  c.reference = [s](const HostTensors& in, DType) {
    const std::vector<int64_t> at = argmax_ref(in[0], s);
    HostTensor y{{s.x[0], s.x[1], s.out(s.x[2]), s.out(s.x[3])}, std::vector<double>(at.size())};
    for (size_t i = 0; i < at.size(); ++i) y.v[i] = in[0][at[i]];
    return std::vector<Expected>{Expected(y, Tol{0, 0})};  // a copy: exact
  };
  c.grad_reference = [s](const HostTensors& in, const HostTensors& gy, DType) {
    const std::vector<int64_t> at = argmax_ref(in[0], s);
    HostTensor gx{in[0].shape, std::vector<double>(in[0].v.size(), 0.0)};
    for (size_t i = 0; i < at.size(); ++i) gx.v[at[i]] += gy[0][i];
    return std::vector<Expected>{gx};
  };
  if (gradcheck) c.gradcheck = kGradCheckTol;
  c.cuda_tol = {0, 0};  // the same element, the same sums in the same order
  return c;
}

}  // namespace

void add_pool_cases(OpRegistry& r) {
  uint64_t seed = 70;
  // Non-overlapping, overlapping (kernel 3 stride 2 padding 1, a stem's pool), stride 1,
  // kernel 1, windows that do not tile the input (odd sizes: the last row and column dropped).
  for (const Pool& s : {Pool{{2, 3, 6, 8}, {2, 2, 0}}, Pool{{2, 3, 7, 5}, {2, 2, 0}},
                        Pool{{2, 2, 7, 9}, {3, 2, 1}}, Pool{{1, 2, 5, 5}, {3, 1, 1}},
                        Pool{{2, 2, 4, 5}, {2, 1, 0}}, Pool{{1, 3, 3, 4}, {1, 1, 0}},
                        Pool{{3, 4, 9, 9}, {3, 3, 0}}, Pool{{1, 1, 2, 2}, {2, 2, 1}}})
    add_pool(r, s, normal(s.x, seed++), shape_numel(s.x) <= 120);
  // Ties: small integers, so windows hold equal maxima; the first one in row-major order takes
  // the gradient (no finite differences at a tie).
  Input ties = uniform_in({2, 3, 6, 7}, 90, 0, 3);
  ties.values = [gen = ties.values] {
    std::vector<double> v = gen();
    for (double& e : v) e = std::floor(e);
    return v;
  };
  add_pool(r, Pool{{2, 3, 6, 7}, {3, 2, 1}}, ties, false, " ties");
  add_pool(r, Pool{{2, 3, 6, 7}, {2, 1, 0}}, ties, false, " ties");
  // VGG-Small's first pool, threads and many CUDA blocks; the perf case.
  const Pool big{{128, 128, 32, 32}, {2, 2, 0}};
  OpCase& perf = add_pool(r, big, normal(big.x, 99), false);
  perf.perf = true;
  perf.perf_bytes = 4.0 * shape_numel(big.x) * 1.25 + 8.0 * shape_numel(big.x) / 4;
}

}  // namespace mq::test
