#pragma once
// Replaying the quantized golden cases of the MetaQuant reference (ste-* and metaquant-* of
// tests/data/golden/metaquant-ref, tolerances of its README) and verifying a whole golden
// directory (fp cases through meta/golden/golden.h). Shared by tests/test_golden_quant.cpp and
// `mqtrain verify-golden DIR [--case NAME]`.
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "meta/golden/golden.h"

namespace mq::golden {

struct QuantResult {
  std::vector<double> losses;
  Tensor step1_logits;
  std::map<std::string, Tensor> final_state;  // the model's state_dict after the last step
  std::map<std::string, Tensor> meta_final;   // metaquant: the meta network after the last step
  std::vector<std::string> quantized_weights;  // names of the quantized layers' weights
  // Layers whose last W~ was the weight tensor itself (BWN without a meta update): the
  // reference registers that tensor a second time, as `<layer>.pre_quantized_weight`.
  std::vector<std::string> aliased_layers;
};

// ResNet20 from init/ with QConv2d/QLinear of the case's quantizer and bitW; ste: the case's
// PyTorch optimizer; metaquant: the case's meta network (hidden, num_fc, activation from the
// manifest, weights from <case>/meta_init.*) and MetaQuantTrainer. `steps` steps.
QuantResult replay_quant(const Set& set, const Case& c);

// Replays an ste/metaquant case and checks every quantity docs/metaquant.md §11.2 specifies:
// losses, first-step logits (ste), final state and meta network (SGD: max abs; Adam-refined: the
// Adam rule), signs of the final quantized weights.
Verdict verify_quant(const Set& set, const Case& c);

// Signs of `actual` and `expected` agree wherever |expected| >= kSignIgnoreAbs.
TensorDiff compare_signs(const std::string& name, const Tensor& actual, const Tensor& expected);

// Every case of the golden directory whose name equals `case_filter` (or contains it; empty =
// all), fp cases included: prints one line per case (PASS/FAIL, worst loss error, worst tensor)
// and the failing findings to `out`. True when every selected case passes; an unknown filter
// is an mq::Error listing the cases. Cases named in `skip` are left out (and said so); a name
// that is not a case of the set is an mq::Error.
bool verify_golden_dir(const std::string& dir, const std::string& case_filter, std::ostream& out,
                       const std::vector<std::string>& skip = {});

}  // namespace mq::golden
