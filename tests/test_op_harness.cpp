// The op harness (tests/op_harness.h): its modes over every case of the registry, and the harness
// failing on purpose-made errors. (The check that every op of meta/op_index.h has an entry sits
// next to the registry, in tests/op_harness.cpp.)
#include "engine/cuda/cuda_api.h"
#include "op_harness.h"
#include "test_data_util.h"

using namespace mq;
using namespace mq::test;

namespace {

void report(const std::vector<std::string>& failures) {
  if (failures.empty()) SUCCEED();
  for (const std::string& f : failures) FAIL_CHECK(f);
}

// `on_cpu`: the mode runs on the CPU, where the sanitizer build leaves out the large cases.
template <class Mode>
void run_all(Mode mode, bool on_cpu) {
  for (const OpCase& c : op_registry().cases())
    if (op_selected(c.op) && !(on_cpu && c.large && test::kSanitized)) report(mode(c));
}

}  // namespace

TEST_CASE("op harness: CPU forward (and gradients) against the formulas, f32 and f64",
          "[ops][harness]") {
  run_all(run_formula, true);
}

TEST_CASE("op harness: f64 gradient checks", "[ops][grad][harness]") { run_all(run_gradcheck, true); }

TEST_CASE("op harness: CUDA against the CPU", "[cuda][harness]") {
  if (!cuda_available_or_skip()) return;
  run_all(run_cuda, false);
}

TEST_CASE("op harness: perf (MQ_OP=name,... to select)", "[.][perf]") {
  const bool with_cuda = cuda::device_count() > 0;
  fmt::print("{:<18} {:<44} {:<7} {:>10} {:>12} {:>8} {:>9}\n", "op", "params", "device",
             "fwd ms", "fwd+bwd ms", "GB/s", "GFLOP/s");
  for (const OpCase& c : op_registry().cases()) {
    if (!c.perf || !op_selected(c.op)) continue;
    for (const PerfRow& r : run_perf(c, with_cuda)) {
      auto rate = [&](double amount, double scale) {
        return amount > 0 ? fmt::format("{:.1f}", amount / scale / (r.forward_ms * 1e-3)) : "-";
      };
      fmt::print("{:<18} {:<44} {:<7} {:>10.3f} {:>12} {:>8} {:>9}\n", c.op, c.params, r.device,
                 r.forward_ms, r.backward_ms > 0 ? fmt::format("{:.3f}", r.backward_ms) : "-",
                 rate(c.perf_bytes, 1e9), rate(c.perf_flops, 1e9));
    }
  }
  SUCCEED();
}

TEST_CASE("op harness: wrong formulas, gradients and bounds fail, naming op and element",
          "[ops][harness]") {
  // A case of add whose reference, gradient reference and backward can each be made wrong.
  auto make = [](double ref_shift, double grad_scale, bool detach_second) {
    OpCase c;
    c.op = "add";
    c.params = "self-test";
    c.build = from_inputs({normal({3, 4}, 1).grad(), normal({3, 4}, 2).grad()},
                          [detach_second](const std::vector<Tensor>& in) {
                            // a + sg(a) b: the backward misses a's share in the product
                            return std::vector<Tensor>{
                                add(in[0], detach_second ? mul(stop_gradient(in[0]), in[1]) : in[1])};
                          });
    c.reference = [ref_shift](const HostTensors& in, DType) {
      HostTensor y = in[0];
      for (size_t i = 0; i < y.v.size(); ++i) y.v[i] += in[1][i] + ref_shift;
      return std::vector<Expected>{y};
    };
    c.grad_reference = [grad_scale](const HostTensors&, const HostTensors& r, DType) {
      HostTensor g = r[0];
      for (double& v : g.v) v *= grad_scale;
      return std::vector<Expected>{g, g};
    };
    c.gradcheck = kGradCheckTol;
    return c;
  };
  REQUIRE(run_formula(make(0, 1, false)).empty());
  REQUIRE(run_gradcheck(make(0, 1, false)).empty());

  auto wrong_value = run_formula(make(1e-3, 1, false));
  REQUIRE(wrong_value.size() == 2);  // f32 and f64
  CHECK_THAT(wrong_value[0], Catch::Contains("add [self-test] formula f32: output 0: worst element"));
  auto wrong_grad = run_formula(make(0, 2, false));
  REQUIRE_FALSE(wrong_grad.empty());
  CHECK_THAT(wrong_grad[0], Catch::Contains("gradient of input 0"));
  auto wrong_backward = run_gradcheck(make(0, 1, true));
  REQUIRE(wrong_backward.size() == 1);
  CHECK_THAT(wrong_backward[0], Catch::Contains("gradcheck f64") && Catch::Contains("input 0"));

  // A custom bound and a shape mismatch fail too; an exception is a failure, not a crash.
  OpCase custom = make(0, 1, false);
  custom.reference = [](const HostTensors& in, DType) {
    Expected e(in[0]);
    e.excess = [](int64_t i, double) { return i == 5 ? 1.0 : -1.0; };
    return std::vector<Expected>{e};
  };
  auto bound = run_formula(custom);
  REQUIRE(bound.size() == 2);
  CHECK_THAT(bound[0], Catch::Contains("worst element [1, 1]"));
  custom.reference = [](const HostTensors&, DType) {
    return std::vector<Expected>{HostTensor{{12}, std::vector<double>(12)}};
  };
  CHECK_THAT(run_formula(custom)[0], Catch::Contains("shape [3, 4] expected [12]"));
  custom.build = [](DType, Device) -> Built { throw Error("no such op"); };
  CHECK_THAT(run_formula(custom)[0], Catch::Contains("threw: no such op"));
}
