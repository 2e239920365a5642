#pragma once
// The trainers of docs/metaquant.md:
//  - SteTrainer (§8.1): plain training of a model built with QuantizedLayerFactory
//    (with default layers it is the full-precision trainer)
//    (forward with W^ = Q(A(W)), STE backward, PyTorch SGD / Adam without weight decay);
//  - MetaQuantTrainer (§5, steps 1-6): the meta network generates every quantized
//    layer's gradient from (g_W^, W~) of the previous step; the optimizee's rule refines it;
//    the meta network learns through Wm = W - lr*(c*G + sg(W.grad - c*G)).
// Also the learning-rate schedules of §8.2 and an epoch loop over either trainer.
// Test evaluation is mq::evaluate (meta/train_loop.h): eval mode quantizes Q(A(W)) of the
// current W with no meta update.
//
//   ResNetCifar model(20, 10, 3, seed, QuantizedLayerFactory({Quantizer::dorefa, 1}));
//   MetaNet meta({MetaKind::multi_fc, 100, 3, MetaAct::none}, seed);
//   MetaQuantTrainer trainer(model, meta, {.optimizer = "SGD", .lr = 1e-3});
//   StepOutput out = trainer.step(x, y);   // one iteration; out.loss of this step's forward
#include <memory>
#include <optional>
#include <string>

#include "engine/optim/optimizer.h"
#include "engine/thread_governor.h"
#include "meta/data_parallel.h"
#include "meta/meta_net.h"
#include "meta/quantized_layers.h"
#include "meta/train_loop.h"
#include "models/model.h"

namespace mq {

struct StepOutput {
  double loss = 0;      // the global batch's mean loss
  int64_t correct = 0;  // correct predictions in the global batch
  Tensor logits;        // this step's logits (detached); undefined when the batch was sliced
};

class QuantTrainer {
 public:
  virtual ~QuantTrainer() = default;
  // One training iteration on a batch (x, y on the model's device). Data parallel
  // (set_parallel): x, y are this rank's part of a global batch of `global` images (0: x is
  // the whole batch).
  virtual StepOutput step(const Tensor& x, const Tensor& y, int64_t global = 0) = 0;
  // Ranks and accumulation (meta/data_parallel.h); before the first step.
  void set_parallel(const DataParallel& parallel);
  const DataParallel& parallel() const { return parallel_; }
  virtual double lr() const = 0;
  virtual void set_lr(double lr) = 0;
  virtual Model& model() = 0;
  // What a resumed run needs beyond the model's state_dict, as named tensors for a checkpoint:
  // optimizer state(s), and for MetaQuant the meta network, the last step's meta inputs
  // (g_W^, W~), the LSTM state and the step count. Loading checks names, shapes and dtypes and
  // moves the tensors to the trainer's device.
  virtual TensorMap state_dict() const = 0;
  virtual void load_state_dict(const TensorMap& state) = 0;
  // Data parallel: every rank calls it before rank 0 saves state_dict() (a rank may hold part
  // of the state up to date only, as MetaQuant's LSTM state of its own meta rows).
  virtual void gather_state() {}

 protected:
  // Sums `tensors` and the step's [loss, correct] over the ranks (nothing with one rank), then
  // updates the batch-norm running statistics; the loss must be finite afterwards.
  void reduce_step(std::vector<Tensor> tensors, double& loss, int64_t& correct, int64_t step);
  // --check-sync: every check_every steps, the replicas' parameters compared.
  void check_sync(const std::vector<Tensor>& params, int64_t steps_done);

  DataParallel parallel_;
  std::unique_ptr<BatchNormSync> bn_sync_;
};

class SteTrainer : public QuantTrainer {
 public:
  // optimizer: "SGD", "SGD-M" or "Adam" (PyTorch's, no weight decay).
  SteTrainer(Model& model, const std::string& optimizer, double lr);
  StepOutput step(const Tensor& x, const Tensor& y, int64_t global = 0) override;
  double lr() const override { return opt_->lr(); }
  void set_lr(double lr) override { opt_->set_lr(lr); }
  Model& model() override { return model_; }
  TensorMap state_dict() const override;
  void load_state_dict(const TensorMap& state) override;

 private:
  Model& model_;
  std::unique_ptr<Optimizer> opt_;
  int64_t t_ = 0;  // steps done (names the iteration when the loss diverges)
};

struct MetaQuantOptions {
  std::string optimizer = "SGD";  // the optimizee's refinement: "SGD", "SGD-M", "Adam"
  double lr = 1e-3;
  double meta_lr = 1e-3;  // the meta optimizer (PyTorch Adam)
  // false: the meta lr stays constant (the reference); true: set_lr() scales it with the
  // optimizee's lr (the paper).
  bool meta_lr_follows_lr = false;
};

class MetaQuantTrainer : public QuantTrainer {
 public:
  // The model must be built with QuantizedLayerFactory; meta on the model's device and dtype.
  MetaQuantTrainer(Model& model, MetaNet& meta, MetaQuantOptions options = {});
  StepOutput step(const Tensor& x, const Tensor& y, int64_t global = 0) override;
  double lr() const override { return opt_->lr(); }
  void set_lr(double lr) override;
  Model& model() override { return model_; }
  TensorMap state_dict() const override;
  void load_state_dict(const TensorMap& state) override;
  void gather_state() override;

 private:
  // Sliced steps (meta/data_parallel.h) split the meta network's rows into as many parts as the
  // batch has slices; a rank computes its own parts (rows [a, b)), keeping each one's graph.
  struct MetaRows {
    int64_t a = 0, b = 0;
    Tensor G;        // with history into phi
    LstmState next;  // LSTMFC: the new state of these rows
  };
  SplitGradient sliced_meta_gradient(std::vector<MetaRows>& own);

  Model& model_;
  MetaNet& meta_;
  MetaQuantOptions options_;
  std::unique_ptr<Optimizer> opt_, meta_opt_;
  std::vector<QuantLayerRef> layers_;
  std::vector<int64_t> offsets_;
  std::vector<bool> quantized_weight_;  // per model parameter: a quantized layer's weight
  int64_t rows_ = 0;
  Tensor g_all_, x_all_;  // g_W^ and W~ of the last step, all layers concatenated
  LstmState state_;
  int64_t t_ = 0;
};

// The schedules of docs/metaquant.md §8.2. "N" (an integer): lr *= 0.1 after every epoch e with
// (e+1) % N == 0. "adaptive": lr *= 0.1 once the epoch's mean training loss has not improved on
// the best for 3 epochs in a row (the count restarts after each decay).
class LrSchedule {
 public:
  static LrSchedule parse(const std::string& text);  // "30", "adaptive"
  static LrSchedule every(int n);
  static LrSchedule adaptive(int patience = 3);
  // The lr to use after epoch `epoch` (0-based) whose mean training loss was `loss`.
  double after_epoch(int epoch, double loss, double lr);
  static bool should_stop(double lr) { return lr < 1e-6; }

  // The adaptive schedule's memory, saved in checkpoints.
  struct State {
    double best = 0;
    bool have_best = false;
    int bad = 0;
  };
  State state() const { return {best_, have_best_, bad_}; }
  void restore(const State& s) {
    best_ = s.best;
    have_best_ = s.have_best;
    bad_ = s.bad;
  }

 private:
  int every_ = 0;  // 0: adaptive
  int patience_ = 3;
  double best_ = 0;
  bool have_best_ = false;
  int bad_ = 0;
};

// One epoch with either trainer, in train mode: mean loss, accuracy and throughput, and every
// step reported to `on_step`. With a governor, it picks each step's CPU thread count
// (engine/thread_governor.h); the results do not depend on it.
EpochResult train_epoch(QuantTrainer& trainer, DataLoader& loader, Device device, int epoch,
                        const StepCallback& on_step = nullptr, ThreadGovernor* governor = nullptr);

}  // namespace mq
