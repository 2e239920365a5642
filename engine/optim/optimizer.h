#pragma once
// Optimizers over a list of parameter tensors, reading each parameter's .grad (parameters
// without a gradient are skipped, as in PyTorch). Two ways to use one:
//  - step(): the PyTorch 1.13 update (SGD, SGD with momentum/weight decay, Adam);
//  - refine() then descend(): MetaQuant (docs/metaquant.md §5 step 6, §7.2). refine()
//    rewrites each .grad into the optimizer's refined direction d (advancing its state),
//    descend() applies p -= lr * p.grad.
// Optimizers hold tensor handles: build them after moving the model to its device.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace mq {

// Hyperparameters the MetaQuant reference hard-codes for its refinement.
constexpr double kMetaQuantWeightDecay = 5e-4;
constexpr double kMetaQuantMomentum = 0.9;

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> params, double lr, const char* name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  virtual void refine() = 0;
  void descend();    // p -= lr * p.grad for every parameter with a gradient (no history)
  void zero_grad();  // resets every parameter's .grad (PyTorch set_to_none)

  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }

  // Optimizer state as tensors (for checkpoints): "lr" (f64 scalar) and per parameter index i
  // "<i>.step" (i64 scalar) plus the optimizer's buffers ("<i>.momentum_buffer",
  // "<i>.exp_avg", "<i>.exp_avg_sq"). Loading checks names, shapes and dtypes.
  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& state);

 protected:
  // Named per-parameter buffers of the subclass (undefined until first used).
  virtual std::vector<std::pair<std::string, std::vector<Tensor>*>> buffers() = 0;
  Tensor& param(size_t i) { return params_[i]; }

  std::vector<Tensor> params_;
  std::vector<int64_t> steps_;  // per parameter, as PyTorch's state['step']
  double lr_;
  std::string name_;
};

// PyTorch SGD: d = g + wd * p; with momentum buf = m * buf + d (first buf = d), d = buf;
// p -= lr * d. refine() rewrites .grad to that d (MetaQuant: SGD d = g; SGD-M with
// momentum 0.9 and weight decay 5e-4).
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, double lr, double momentum = 0, double weight_decay = 0);
  void step() override;
  void refine() override;

  const double momentum, weight_decay;

 protected:
  std::vector<std::pair<std::string, std::vector<Tensor>*>> buffers() override;

 private:
  Tensor direction(size_t i);  // advances the momentum buffer
  std::vector<Tensor> momentum_buffer_;
};

// PyTorch 1.13 Adam (amsgrad off): g += wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
// refine() (MetaQuant): same moments, d = (sqrt(bc2) / bc1) * m / (sqrt(v) + eps) into .grad;
// note eps sits outside the bias correction there.
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, double lr, double beta1 = 0.9, double beta2 = 0.999,
       double eps = 1e-8, double weight_decay = 0);
  void step() override;
  void refine() override;

  const double beta1, beta2, eps, weight_decay;

 protected:
  std::vector<std::pair<std::string, std::vector<Tensor>*>> buffers() override;

 private:
  void update(bool refine_only);
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
};

// "SGD", "SGD-M" or "Adam" (the reference's -o values). With `metaquant`, the refinement
// hyperparameters of docs/metaquant.md §6.10 (SGD-M: momentum 0.9 + wd 5e-4; Adam: wd 5e-4);
// without, the baselines' plain PyTorch optimizers (SGD-M: momentum 0.9, no weight decay).
std::unique_ptr<Optimizer> make_optimizer(const std::string& kind, std::vector<Tensor> params,
                                          double lr, bool metaquant);

}  // namespace mq
