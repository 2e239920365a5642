#pragma once
// Golden traces of the MetaQuant reference (tests/data/golden/metaquant-ref, see its README):
// loading a case, comparing states under the README's tolerances, and replaying the
// full-precision cases. Shared by the [golden] tests and `mqtrain verify-golden`.
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace mq::golden {

// Tolerances of docs/metaquant.md §11.2 (never loosen them to make a case pass).
constexpr double kLossRel = 1e-4;         // every per-step loss, relative
constexpr double kStep1Atol = 1e-5;       // first-step logits and gradients:
constexpr double kStep1Rtol = 1e-4;       //   |a - b| <= atol + rtol |b|
constexpr double kFinalSgdAbs = 1e-4;     // final tensors, SGD cases: max |a - b|
constexpr double kFinalAdamAbs = 1e-4;    // final tensors, Adam cases: this bound for ...
constexpr double kFinalAdamFrac = 0.999;  //   ... at least this fraction of elements
constexpr double kFinalAdamMax = 1e-2;    //   and all within this
constexpr double kSignIgnoreAbs = 1e-4;   // sign agreement of quantized weights, |w| >= this

struct Case {
  std::string name, mode, quantize, optimizer, meta;  // empty where the manifest has null
  int bit_w = 1;
  std::vector<double> losses;
};

struct Set {
  std::string dir;
  double lr = 0, meta_lr = 0, adam_weight_decay = 0;
  int hidden = 0, num_fc = 0, batch = 0, steps = 0;
  std::string meta_nonlinear;
  std::vector<Case> cases;
  Tensor inputs_x;  // [steps, batch, 3, 32, 32] f32
  Tensor inputs_y;  // [steps, batch] i64

  const Case& find(const std::string& name) const;  // error lists the case names
  Tensor batch_x(int step) const;                   // [batch, 3, 32, 32]
  Tensor batch_y(int step) const;                   // [batch]
  std::map<std::string, Tensor> init() const;       // init/<name>.npy
  // <case>/<prefix><name>.npy, e.g. prefix "final." or "step1.grad."
  std::map<std::string, Tensor> load(const Case& c, const std::string& prefix) const;
  Tensor load_one(const Case& c, const std::string& file) const;  // e.g. "step1.logits"
};

// Reads manifest.json and the inputs; errors name the missing/malformed file.
Set load_set(const std::string& dir);

// ---- comparing ----
enum class Rule {
  allclose,   // |a - b| <= kStep1Atol + kStep1Rtol |b| everywhere
  max_abs,    // max |a - b| <= kFinalSgdAbs
  adam_final  // >= kFinalAdamFrac within kFinalAdamAbs and all within kFinalAdamMax
};

struct TensorDiff {
  std::string name;
  bool ok = true;
  double max_abs = 0;        // max |a - b|
  int64_t worst_index = -1;  // flat index of the worst element (by rule excess)
  double actual = 0, expected = 0;
  double frac_within = 1;    // fraction within kFinalAdamAbs (adam_final)
  std::string problem;       // shape mismatch / missing tensor
  std::string str() const;
};

struct Report {
  bool ok = true;
  std::vector<TensorDiff> tensors;  // one per expected tensor
  const TensorDiff* worst() const;  // largest max_abs (a failing one first)
  std::string str() const;          // summary: count, worst tensor and element
};

TensorDiff compare_tensor(const std::string& name, const Tensor& actual, const Tensor& expected,
                          Rule rule);
// Compares every tensor of `expected` with the same name in `actual` (missing = failure).
Report compare_state(const std::map<std::string, Tensor>& actual,
                     const std::map<std::string, Tensor>& expected, Rule rule);
// |a - b| <= kLossRel |b| for each step; returns the worst relative error (or +inf on a count
// mismatch).
double worst_loss_rel(const std::vector<double>& actual, const std::vector<double>& expected);

// ---- replaying full-precision cases ----
struct FpResult {
  std::vector<double> losses;
  Tensor step1_logits;
  std::map<std::string, Tensor> step1_grads;  // parameter name -> gradient of step 1
  std::map<std::string, Tensor> final_state;  // state_dict after the last step
};
// ResNet20 from init/, `steps` steps of train-mode mean cross-entropy with the case's
// optimizer (PyTorch SGD / Adam at the manifest's lr, no weight decay).
// `dtype` f64 runs the same steps in double precision (a diagnostic: it separates float
// rounding of the ops from logic errors); results are returned in f32 either way.
FpResult replay_fp(const Set& set, const Case& c, DType dtype = DType::f32);

struct Verdict {
  bool ok = true;
  std::vector<std::string> lines;  // human-readable findings, worst errors included

  // Records one finding ("ok   ..." or "FAIL ...").
  void note(bool pass, const std::string& line);
  // The per-step losses against the case's, within kLossRel.
  void check_losses(const std::vector<double>& losses, const Case& c);
};
// Replays an fp case and checks every quantity docs/metaquant.md §11.2 specifies.
Verdict verify_fp(const Set& set, const Case& c, DType dtype = DType::f32);

}  // namespace mq::golden
