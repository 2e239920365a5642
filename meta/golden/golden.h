#pragma once
// Golden traces of the MetaQuant reference (tests/data/golden/metaquant-ref, see its README):
// loading and validating a set and its cases (meta/golden/golden_set.cpp: a golden directory may come
// from anyone, so every field and file is checked before any replay), comparing states under the
// README's tolerances, and replaying the full-precision cases. Shared by the [golden] tests and
// `mqtrain verify-golden`.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "meta/meta_net.h"
#include "models/model.h"

namespace mq::golden {

constexpr int64_t kClasses = 10;  // the sets train 10-class models on 3x32x32 inputs
// The most activations per weight element a case's meta network may keep (hidden x num_fc for
// MultiFC, 2 hidden for FC-Grad, 6 hidden for LSTMFC): the replay keeps about 270k weights times
// this many floats. The shipped set keeps at most 600.
constexpr int64_t kMaxMetaWidth = 1024;

// Tolerances of docs/metaquant.md §11.2, rule v2 (never loosen them to make a case pass).
constexpr double kLossRel = 1e-4;         // every per-step loss, relative
constexpr double kStep1Atol = 1e-5;       // first-step logits and gradients:
constexpr double kStep1Rtol = 1e-4;       //   |a - b| <= atol + rtol |b|
constexpr double kFinalAtol = 1e-4;       // final tensors: tol(b) = atol + rtol |b|, relative
constexpr double kFinalRtol = 1e-5;       //   where values are large (BN running variances)
constexpr double kFinalAdamFrac = 0.999;  // Adam: this fraction of all the case's final elements
                                          //   within tol, ...
constexpr double kFinalAdamMaxAtol = 1e-2;  // ... and every element within this atol
constexpr double kFinalAdamMaxRtol = 1e-3;  //   + this rtol |b|
constexpr double kSignIgnoreAbs = 1e-4;   // sign agreement of quantized weights, |w| >= this

struct Case {
  std::string name;       // a plain name: the case's folder
  std::string mode;       // fp | ste | metaquant
  std::string quantize;   // a quantizer of the table (ste, metaquant); empty for fp
  std::string optimizer;  // SGD | Adam
  std::string meta;       // FC-Grad | MultiFC | LSTMFC (metaquant); empty otherwise
  int bit_w = 1;          // within the quantizer's bits (1 for fp)
  std::vector<double> losses;  // one per step
};

struct Set {
  std::string dir;
  std::string model;  // a name of the zoo (models/zoo.h), from the manifest's "model"
  std::vector<std::string> quantized_layers;  // the manifest's list, when it has one
  double lr = 0, meta_lr = 0;
  double adam_weight_decay = 0;  // always kMetaQuantWeightDecay (the engine's; others refused)
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

// Reads manifest.json and the inputs. Every field is type- and range-checked (the ranges of
// mqtrain's flags, meta/run/training_run.h: hidden 1..4096, num_fc 2..64, batch 1..65536, bitW within the case's
// quantizer's bits; a meta network within kMaxMetaWidth; adam_weight_decay the engine's 5e-4;
// case names plain names); inputs_x must be f32 [>= steps, batch, 3, 32, 32] and inputs_y i64
// [>= steps, batch] with labels 0..9. Every problem, including what std::filesystem and the JSON
// library report, is an mq::Error naming the file (and field).
Set load_set(const std::string& dir);

// The zoo name a manifest's "model" text starts with, lowercased: "ResNet20 (CIFAR, ...)" ->
// "resnet20", "custom-cnn, CIFAR input ..." -> "custom-cnn".
std::string golden_model_name(const std::string& text);
// The set's model (10 classes, 3 input channels) with `layers`. With quantized layers and a
// manifest that lists them, the model's quantized layers must be those, in that order.
std::unique_ptr<Model> make_golden_model(const Set& set, const LayerFactory& layers);

// Checks a case's tensor files before a replay: every tensor the replay compares is there
// (final.* for each float tensor of the model, step1.grad.* for each parameter of fp cases,
// step1.logits of fp and ste cases, meta_init.* / meta_final.* for each tensor of the meta
// network), each with the shape the case's model has, and no other. mq::Error naming the file.
void check_case_files(const Set& set, const Case& c);
// The tensor files a case needs, as file stems ("final.fc.bias", "step1.logits") -> shape.
std::map<std::string, Shape> expected_case_files(const Set& set, const Case& c);

// The meta network of a metaquant case (hidden, num_fc and activation from the manifest).
MetaNetConfig meta_config(const Set& set, const Case& c);

// ---- comparing ----
enum class Rule {
  allclose,    // |a - b| <= kStep1Atol + kStep1Rtol |b| everywhere
  final_sgd,   // |a - b| <= tol(b) everywhere
  final_adam   // |a - b| <= kFinalAdamMaxAtol + kFinalAdamMaxRtol |b| everywhere; the fraction
               // within tol(b) is judged over all the case's final tensors (adam_fraction)
};

struct TensorDiff {
  std::string name;
  Rule rule = Rule::allclose;
  bool ok = true;
  double max_abs = 0;        // max |a - b|
  int64_t worst_index = -1;  // flat index of the worst element (by rule excess)
  double actual = 0, expected = 0;
  int64_t elements = 0, within_tol = 0;  // elements, and those within tol(b) (final rules)
  std::string problem;       // shape mismatch / missing tensor
  std::string str() const;
};

struct Report {
  bool ok = true;
  std::vector<TensorDiff> tensors;  // one per expected tensor
  const TensorDiff* worst() const;  // largest max_abs (a failing one first)
  std::string str() const;          // summary: count, worst tensor and element
};

// The fraction of all elements of `reports` within tol(b), and whether it reaches kFinalAdamFrac
// (the Adam rule counts a case's final model and meta-network tensors together).
struct AdamFraction {
  double fraction = 1;
  bool ok = true;
  std::string str() const;
};
AdamFraction adam_fraction(const std::vector<const Report*>& reports);

TensorDiff compare_tensor(const std::string& name, const Tensor& actual, const Tensor& expected,
                          Rule rule);
// Compares every tensor of `expected` with the same name in `actual`; a tensor missing on either
// side fails (a float tensor of `actual` without its golden file too).
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

// How a verdict names the rule of the final tensors (SGD or Adam).
const char* final_rule_name(bool adam);

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
