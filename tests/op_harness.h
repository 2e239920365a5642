#pragma once
// One harness for the op tests (after ggml's test-backend-ops): every op of meta/op_index.h has
// an entry, a list of OpCases, and four modes iterate them (tests/test_op_harness.cpp):
//   formula  CPU forward in f32 and f64 (and, where given, its gradients) against a plain
//            reference formula in double on host vectors
//   grad     f64 gradient check against central differences
//   cuda     CUDA against the CPU in f32, outputs and gradients ([cuda]; WARN without a device)
//   perf     forward (+ backward) timed at the case's size, a table ([.][perf], MQ_OP=name,...)
// The cases live in tests/op_cases_*.cpp, one function per op family. Failures name the op, the
// case's parameters, the mode and the worst element.
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "op_test.h"

namespace mq::test {

struct Tol {
  double atol = 0, rtol = 0;  // |actual - expected| <= atol + rtol |expected|
};

// A tensor's values in double on the host, for reference formulas.
struct HostTensor {
  Shape shape;
  std::vector<double> v;
  int64_t numel() const { return static_cast<int64_t>(v.size()); }
  double operator[](size_t i) const { return v[i]; }
};
using HostTensors = std::vector<HostTensor>;
HostTensor host(const Tensor& t);  // any device and dtype

// What one output (or one input's gradient) must equal.
struct Expected {
  HostTensor want;
  std::optional<Tol> tol;  // replaces the case's tolerance for this mode and dtype
  // Replaces any tolerance: how far element i of the actual value lies outside its bound
  // (<= 0 passes), for checks that are not |a - e| <= tol (quantization codes, data-dependent
  // bounds).
  std::function<double(int64_t i, double actual)> excess;

  Expected(HostTensor w) : want(std::move(w)) {}  // NOLINT: a plain value is an Expected
  Expected(HostTensor w, Tol t) : want(std::move(w)), tol(t) {}
};

// One input of a case: its shape, values (generated lazily, deterministic) and gradient flag.
// Floating inputs take the dtype of the mode; `fixed` keeps integer ones (labels) as they are.
struct Input {
  Shape shape;
  std::function<std::vector<double>()> values;
  std::optional<DType> fixed;
  bool requires_grad = false;
  Input& grad(bool on = true) {
    requires_grad = on;
    return *this;
  }
};
Input normal(const Shape& shape, uint64_t seed, double scale = 1.0, double offset = 0.0);
Input uniform_in(const Shape& shape, uint64_t seed, double lo, double hi);
Input values(std::vector<double> v, const Shape& shape);
Input labels(std::vector<int64_t> v, DType dtype = DType::i64);
Tensor materialize(const Input& in, DType dtype, Device device);

// A case on one device in one dtype: the tensors the forward reads (those that require grad
// are differentiated; the gradient check perturbs the f64 ones in place) and the forward.
struct Built {
  std::vector<Tensor> inputs;
  std::function<std::vector<Tensor>()> forward;
};
using Builder = std::function<Built(DType, Device)>;
// The common builder: materialize `inputs`, run `f` on them.
Builder from_inputs(std::vector<Input> inputs,
                    std::function<std::vector<Tensor>(const std::vector<Tensor>&)> f);

// (host inputs, dtype) -> one Expected per output.
using Reference = std::function<std::vector<Expected>(const HostTensors& in, DType dtype)>;
// (host inputs, cotangent of each output (empty for outputs without history), dtype) -> one
// Expected per input that requires grad, in input order.
using GradReference = std::function<std::vector<Expected>(const HostTensors& in,
                                                          const HostTensors& cotangents,
                                                          DType dtype)>;

struct OpCase {
  std::string op;      // the name in MQ_FOR_EACH_OP
  std::string params;  // for reports: shapes, options
  Builder build;

  // formula: CPU forward in each dtype against `reference` (none: a perf-only case), tolerance
  // per dtype.
  Reference reference;
  GradReference grad_reference;  // optional: the gradients against a formula too
  std::vector<DType> dtypes = {DType::f32, DType::f64};
  Tol f32_tol{kF32Abs, kF32Rel}, f64_tol{kF64Tol, kF64Tol};

  // grad: f64 central differences (tolerance as check_gradients; none = not checked here).
  std::optional<double> gradcheck;
  // Builds the function whose finite differences the backward must match when that is not the
  // forward (the STE's surrogate), from the unperturbed inputs.
  std::function<MultiFn(const std::vector<Tensor>& at)> grad_surrogate;

  // cuda: f32 on CUDA against f32 on the CPU, TF32 off (on only for tests of the switch).
  bool cuda = true;
  bool tf32 = false;
  Tol cuda_tol{kCudaAbs, kCudaRel};
  std::optional<Tol> cuda_grad_tol;  // gradients; cuda_tol when unset
  // Custom bounds for the CUDA outputs from the CPU outputs (default: cuda_tol each).
  std::function<std::vector<Expected>(const HostTensors& cpu_outputs)> cuda_expected;

  // perf: only cases marked so run (each op has at least one); bytes moved and flops of one
  // forward, 0 when not meaningful.
  bool perf = false;
  double perf_bytes = 0, perf_flops = 0;

  // Millions of elements, there for CUDA's many blocks: the sanitizer build (MQ_SANITIZED, ~10x
  // slower) skips their CPU formula and gradient checks; the smaller cases cover the same code.
  bool large = false;

  std::string title() const { return op + " [" + params + "]"; }
};

// Every op's cases; `add` starts a case of op `op` (an index name). The returned reference stays
// valid while more cases are added.
class OpRegistry {
 public:
  OpCase& add(const std::string& op, const std::string& params);
  // An op whose backward is by design not a derivative (or which has none): `why` is reported
  // where the index coverage test asks for a gradient check.
  void no_gradcheck(const std::string& op, const std::string& why);
  const std::deque<OpCase>& cases() const { return cases_; }
  const std::string* no_gradcheck_reason(const std::string& op) const;

 private:
  std::deque<OpCase> cases_;
  std::vector<std::pair<std::string, std::string>> no_gradcheck_;
};

// The case functions, one per op family (tests/op_cases_*.cpp).
void add_elementwise_cases(OpRegistry& r);
void add_reduction_cases(OpRegistry& r);
void add_conv_cases(OpRegistry& r);
void add_linear_cases(OpRegistry& r);
void add_pool_cases(OpRegistry& r);
void add_norm_cases(OpRegistry& r);
void add_loss_cases(OpRegistry& r);
void add_quantize_cases(OpRegistry& r);
void add_meta_cases(OpRegistry& r);
const OpRegistry& op_registry();  // all of the above, built once

// The modes: each returns the failures of one case ("" entries never; empty when it passes).
std::vector<std::string> run_formula(const OpCase& c);
std::vector<std::string> run_gradcheck(const OpCase& c);
std::vector<std::string> run_cuda(const OpCase& c);  // needs a device
struct PerfRow {
  std::string device;
  double forward_ms = 0, backward_ms = 0;  // backward_ms: forward + backward, 0 when none
};
std::vector<PerfRow> run_perf(const OpCase& c, bool with_cuda);

// MQ_OP=name[,name...] selects ops for every mode; unset selects all.
bool op_selected(const std::string& op);

}  // namespace mq::test
