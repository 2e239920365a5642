#include "meta/trainers.h"

#include "engine/io/checkpoint.h"
#include "engine/transfer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine/ops.h"
#include "kernels/base/text.h"

namespace mq {
namespace {

double checked_loss(const Tensor& loss, int64_t t) {
  const double v = loss.item();
  MQ_CHECK(std::isfinite(v),
           "training diverged: loss is {} at iteration {}; lower the learning rate (-lr) or "
           "check the input data", v, t + 1);
  return v;
}

const Tensor& need(const TensorMap& in, const std::string& key) {
  auto it = in.find(key);
  MQ_CHECK(it != in.end(), "trainer state: missing '{}' (checkpoint of another kind of run?)", key);
  return it->second;
}
// A saved tensor shaped like `like`, on its device.
Tensor restore_like(const TensorMap& in, const std::string& key, const Tensor& like) {
  const Tensor& t = need(in, key);
  MQ_CHECK(t.shape() == like.shape() && t.dtype() == like.dtype(),
           "trainer state: '{}' is {} but this run needs {}", key, t.describe(), like.describe());
  return t.to(like.device()).clone();
}

// One slice of a step's batch (meta/data_parallel.h) and its share of the global batch.
struct Slice {
  Tensor x, y;
  double weight = 1;
};

std::vector<Slice> slices_of(const Tensor& x, const Tensor& y, int64_t global,
                             const DataParallel& p) {
  MQ_CHECK(x.dim() >= 1 && y.dim() == 1 && x.size(0) == y.size(0),
           "training step: images {} and labels {} do not match", x.describe(), y.describe());
  if (p.slices() == 1) {
    MQ_CHECK(global == 0 || global == x.size(0),
             "training step: a batch of {} images is not the global batch of {}", x.size(0), global);
    return {{x, y, 1.0}};
  }
  MQ_CHECK(global > 0 || p.ranks() == 1,
           "training step: with {} ranks the step needs the global batch size", p.ranks());
  const int64_t n = global > 0 ? global : x.size(0);
  const auto bounds = rank_slices(n, p);
  MQ_CHECK(bounds.back().second == x.size(0),
           "training step: rank {} of {} got {} images, but its part of a batch of {} is {}",
           p.rank(), p.ranks(), x.size(0), n, bounds.back().second);
  std::vector<Slice> out;
  for (auto [b, e] : bounds) {
    MQ_CHECK(e > b, "training step: a batch of {} images leaves slice {} of {} empty", n,
             out.size(), p.slices());
    out.push_back({narrow_rows(x, b, e), narrow_rows(y, b, e), double(e - b) / double(n)});
  }
  return out;
}

// A slice's loss, its correct predictions and its backward into `out`. Alone (not sliced), the
// step's loss, checked at once; sliced, weighted by the slice's share of the batch, and checked
// only once summed over the ranks (a rank alone must not stop). `prepare` runs just before the
// backward (it sets the gradients the backward accumulates into).
template <class Prepare>
void slice_backward(const Tensor& logits, const Slice& s, bool sliced, int64_t t, StepOutput& out,
                    Prepare&& prepare) {
  Tensor loss = cross_entropy(logits, s.y);
  out.correct += count_correct(logits, s.y);
  if (sliced) {
    out.loss += loss.item() * s.weight;
    loss = mul_scalar(loss, s.weight);
  } else {
    out.loss = checked_loss(loss, t);
    out.logits = logits.detach();
  }
  prepare();
  loss.backward();
}

std::vector<Tensor> defined_grads(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const Tensor& p : params)
    if (p.grad().defined()) out.push_back(p.grad());
  return out;
}

}  // namespace

// ---- data parallel ----
void QuantTrainer::set_parallel(const DataParallel& parallel) {
  MQ_CHECK(parallel.accumulate >= 1, "--accumulate {}: expected 1 or more", parallel.accumulate);
  MQ_CHECK(parallel.check_every >= 0, "--check-sync {}: expected 0 or more", parallel.check_every);
  parallel_ = parallel;
  bn_sync_ = std::make_unique<BatchNormSync>(model());
}

void QuantTrainer::reduce_step(std::vector<Tensor> tensors, double& loss, int64_t& correct,
                               int64_t step) {
  for (const Tensor& t : bn_sync_->sums()) tensors.push_back(t);
  if (parallel_.comm) {
    Tensor counts = Tensor::from_vector<double>({loss, double(correct)}, {2});
    tensors.push_back(counts);
    parallel_.comm->allreduce_sum(tensors);
    const std::vector<double> v = counts.to_vector<double>();
    loss = v[0];
    correct = static_cast<int64_t>(v[1]);
  }
  bn_sync_->apply(parallel_.slices());
  bn_sync_->defer(false);
  MQ_CHECK(std::isfinite(loss),
           "training diverged: loss is {} at iteration {}; lower the learning rate (-lr) or "
           "check the input data", loss, step + 1);
}

void QuantTrainer::check_sync(const std::vector<Tensor>& params, int64_t steps_done) {
  if (parallel_.check_every > 0 && parallel_.ranks() > 1 && steps_done % parallel_.check_every == 0)
    check_replicas_agree(*parallel_.comm, checksum(params), steps_done);
}

// ---- STE ----
SteTrainer::SteTrainer(Model& model, const std::string& optimizer, double lr)
    : model_(model), opt_(make_optimizer(optimizer, model.parameters(), lr, /*metaquant=*/false)) {
  for (auto& l : quantized_layers(model_)) l.q->update = {};
}

StepOutput SteTrainer::step(const Tensor& x, const Tensor& y, int64_t global) {
  model_.train();
  opt_->zero_grad();
  const std::vector<Slice> slices = slices_of(x, y, global, parallel_);
  const bool sliced = parallel_.slices() > 1;
  StepOutput out;
  if (sliced) bn_sync_->defer(true);
  for (const Slice& s : slices) slice_backward(model_.forward(s.x), s, sliced, t_, out, [] {});
  if (sliced) reduce_step(defined_grads(model_.parameters()), out.loss, out.correct, t_);
  opt_->step();
  ++t_;
  if (parallel_.check_every > 0) check_sync(model_.parameters(), t_);
  return out;
}

TensorMap SteTrainer::state_dict() const {
  TensorMap out;
  add_prefixed(out, "optim.", opt_->state_dict());
  out["step"] = Tensor::scalar(double(t_), DType::i64);
  return out;
}

void SteTrainer::load_state_dict(const TensorMap& state) {
  const int64_t t = static_cast<int64_t>(need(state, "step").item());
  opt_->load_state_dict(strip_prefix(state, "optim."));
  t_ = t;
}

// ---- MetaQuant ----
MetaQuantTrainer::MetaQuantTrainer(Model& model, MetaNet& meta, MetaQuantOptions options)
    : model_(model), meta_(meta), options_(options) {
  opt_ = make_optimizer(options.optimizer, model.parameters(), options.lr, /*metaquant=*/true);
  meta_opt_ = std::make_unique<Adam>(meta.parameters(), options.meta_lr);
  layers_ = quantized_layers(model_);
  MQ_CHECK(!layers_.empty(),
           "MetaQuant: the model has no quantized layer (QConv2d or QLinear): build its convs and "
           "linears with the LayerFactory it is given, a QuantizedLayerFactory for quantized "
           "training (docs/custom-models.md)");
  for (const auto& l : layers_) {
    offsets_.push_back(rows_);
    rows_ += l.layer->weight.numel();
    l.q->update = {};
  }
  for (const Tensor& p : model_.parameters())
    quantized_weight_.push_back(std::any_of(layers_.begin(), layers_.end(), [&](const auto& l) {
      return l.layer->weight.impl_ptr() == p.impl_ptr();
    }));
  const Tensor& w0 = layers_.front().layer->weight;
  for (const Tensor& p : meta_.parameters())
    MQ_CHECK(p.device() == w0.device() && p.dtype() == w0.dtype(),
             "MetaQuant: the meta network is {} but the model's weights are {}; move it with "
             ".to()", p.describe(), w0.describe());
  g_all_ = Tensor::zeros({rows_}, w0.dtype(), w0.device());
  x_all_ = Tensor::zeros({rows_}, w0.dtype(), w0.device());
}

void MetaQuantTrainer::set_lr(double lr) {
  if (options_.meta_lr_follows_lr) meta_opt_->set_lr(options_.meta_lr * lr / options_.lr);
  opt_->set_lr(lr);
}

StepOutput MetaQuantTrainer::step(const Tensor& x, const Tensor& y, int64_t global) {
  model_.train();
  // 1. zero the meta gradient.
  meta_.zero_grad();
  const std::vector<Slice> slices = slices_of(x, y, global, parallel_);
  const bool sliced = parallel_.slices() > 1;
  std::vector<Tensor> params = model_.parameters();
  // Sliced: every slice's forward reads the previous step's direction (.grad), and the slices'
  // gradients add up in `acc`.
  std::vector<Tensor> prev, acc(params.size());
  if (sliced) {
    for (const Tensor& p : params) prev.push_back(p.grad());
    bn_sync_->defer(true);
  }
  // The next step's meta inputs, in fresh buffers (this step's meta backward reads the old ones;
  // W~ shares W's storage for bwn at t = 0, so copy it before the update of step 6).
  Tensor g_next = Tensor::empty({rows_}, g_all_.dtype(), g_all_.device());
  Tensor x_next = Tensor::empty({rows_}, x_all_.dtype(), x_all_.device());
  StepOutput out;
  std::optional<SplitGradient> split;
  LstmState next;
  std::vector<MetaRows> own;  // sliced: this rank's meta rows
  Tensor dG_sum;              // sliced: the slices' (then the ranks') dL/dG, summed
  for (size_t j = 0; j < slices.size(); ++j) {
    const Slice& s = slices[j];
    // 2. t > 0: the meta gradient of every layer from the previous step's (g_W^, W~), in the
    //    graph through phi. Sliced: this rank's parts of the rows, the others' gathered; their
    //    backward runs once the slices' and ranks' dL/dWm are summed (below).
    if (t_ > 0 && j == 0)
      split = sliced ? sliced_meta_gradient(own)
                     : split_gradient(meta_gradient(meta_, g_all_, x_all_, state_, &next));
    for (size_t i = 0; i < layers_.size(); ++i)
      layers_[i].q->update = split ? MetaUpdate{&*split, offsets_[i], opt_->lr()} : MetaUpdate{};
    if (sliced)
      for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(prev[i]);
    // 3. forward (Wm, W~ = A(Wm), W^ = Q(W~) in every quantized layer).
    Tensor logits;
    try {
      logits = model_.forward(s.x);
    } catch (...) {
      for (auto& l : layers_) l.q->update = {};
      throw;
    }
    for (auto& l : layers_) l.q->update = {};
    // 4. zero the model's gradients (sliced: the slices' sum so far), mean cross-entropy,
    //    backward.
    slice_backward(logits, s, sliced, t_, out, [&] {
      for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(sliced ? acc[i] : Tensor());
    });
    if (sliced) {
      for (size_t i = 0; i < params.size(); ++i) acc[i] = params[i].grad();
      // This slice's -lr * c * dL/dWm of every row (each backward rewrites the whole buffer).
      if (split) {
        if (j == 0) dG_sum = split->dG->clone();
        else add_inplace(dG_sum, *split->dG);
      }
    }
    for (size_t i = 0; i < layers_.size(); ++i) {
      const QuantState& q = *layers_[i].q;
      Tensor dst = flat_view(g_next, offsets_[i], q.w_tilde.shape());
      const Tensor g = q.w_hat.grad();
      if (j == 0) {
        flat_view(x_next, offsets_[i], q.w_tilde.shape()).copy_(q.w_tilde);
        if (g.defined()) dst.copy_(g);
        else dst.zero_();
      } else if (g.defined()) {
        add_inplace(dst, g);
      }
    }
  }
  if (!sliced && t_ > 0 && meta_.config().kind == MetaKind::lstm_fc) state_ = next;
  if (sliced) {
    // Summed over the ranks: the gradients the next lines read. A quantized weight's own
    // gradient is replaced by c * G at t > 0, so it travels only at t = 0.
    std::vector<Tensor> sums;
    for (size_t i = 0; i < params.size(); ++i)
      if (acc[i].defined() && !(t_ > 0 && quantized_weight_[i])) sums.push_back(acc[i]);
    sums.push_back(g_next);
    if (dG_sum.defined()) sums.push_back(dG_sum);
    reduce_step(std::move(sums), out.loss, out.correct, t_);
    if (t_ > 0) {
      // The meta backward of this rank's rows from the summed dL/dG, the parts' gradients
      // added in order, then over the ranks.
      for (MetaRows& m : own) m.G.backward(flat_view(dG_sum, m.a, {m.b - m.a}));
      if (parallel_.comm) {
        std::vector<Tensor> meta_grads = defined_grads(meta_.parameters());
        parallel_.comm->allreduce_sum(meta_grads);
      }
      // Only now (the backward above read the old state's rows): the rows' new LSTM state.
      if (meta_.config().kind == MetaKind::lstm_fc) {
        const int64_t h = meta_.config().hidden;
        if (state_.is_zero())
          state_ = {Tensor::zeros({rows_, h}, g_all_.dtype(), g_all_.device()),
                    Tensor::zeros({rows_, h}, g_all_.dtype(), g_all_.device())};
        for (const MetaRows& m : own) {
          narrow_rows(state_.h, m.a, m.b).copy_(m.next.h);
          narrow_rows(state_.c, m.a, m.b).copy_(m.next.c);
        }
      }
    }
  }
  g_all_ = g_next;
  x_all_ = x_next;
  if (t_ > 0) {
    // 5. meta optimizer step (phi has no gradient at t = 0).
    meta_opt_->step();
    // 6. W.grad = c * G (this step's G and c), refine every parameter's gradient with the
    //    optimizee's rule, p -= lr * d.
    {
      NoGradGuard ng;
      for (size_t i = 0; i < layers_.size(); ++i) {
        Tensor& W = layers_[i].layer->weight;
        W.set_grad(mul(layers_[i].q->calib, flat_view(split->G, offsets_[i], W.shape())));
      }
    }
    opt_->refine();
    opt_->descend();
  }
  for (auto& l : layers_) l.q->calib = Tensor();
  ++t_;
  if (parallel_.check_every > 0) {
    std::vector<Tensor> all = params;
    for (const Tensor& p : meta_.parameters()) all.push_back(p);
    check_sync(all, t_);
  }
  return out;
}

SplitGradient MetaQuantTrainer::sliced_meta_gradient(std::vector<MetaRows>& own) {
  const int S = parallel_.slices(), K = parallel_.accumulate, r = parallel_.rank();
  const bool lstm = meta_.config().kind == MetaKind::lstm_fc;
  Tensor G = Tensor::empty({rows_}, g_all_.dtype(), g_all_.device());
  for (int q = 0; q < K; ++q) {
    const auto [a, b] = part_bounds(rows_, S, r * K + q);
    LstmState st;
    if (!state_.is_zero()) st = {narrow_rows(state_.h, a, b), narrow_rows(state_.c, a, b)};
    MetaRows m;
    m.a = a;
    m.b = b;
    m.G = meta_gradient(meta_, flat_view(g_all_, a, {b - a}), flat_view(x_all_, a, {b - a}), st,
                        lstm ? &m.next : nullptr);
    flat_view(G, a, {b - a}).copy_(m.G.detach());
    own.push_back(std::move(m));
  }
  if (parallel_.ranks() > 1) gather_rows(*parallel_.comm, G);
  // The layers write -lr * c * dL/dWm into dG; the token has no history, as the meta backward
  // runs per part once dG is summed over the slices and ranks.
  SplitGradient s;
  s.G = G;
  s.dG = std::make_shared<Tensor>(Tensor::zeros({rows_}, G.dtype(), G.device()));
  s.token = Tensor::zeros({}, G.dtype(), G.device());
  return s;
}

void MetaQuantTrainer::gather_state() {
  if (parallel_.ranks() > 1 && !state_.is_zero()) {
    gather_rows(*parallel_.comm, state_.h);
    gather_rows(*parallel_.comm, state_.c);
  }
}

TensorMap MetaQuantTrainer::state_dict() const {
  TensorMap out;
  add_prefixed(out, "optim.", opt_->state_dict());
  add_prefixed(out, "meta_optim.", meta_opt_->state_dict());
  add_prefixed(out, "meta.", meta_.state_dict());
  out["step"] = Tensor::scalar(double(t_), DType::i64);
  out["meta_inputs.g_hat"] = g_all_;
  out["meta_inputs.w_tilde"] = x_all_;
  if (!state_.is_zero()) {
    out["lstm.h"] = state_.h;
    out["lstm.c"] = state_.c;
  }
  // The next step's forward reads the .grad (this step's refined direction) of every quantized
  // weight (Wm) and quantized-linear bias.
  for (const auto& [name, p] : model_.named_parameters())
    if (p.grad().defined()) out["grad." + name] = p.grad();
  return out;
}

void MetaQuantTrainer::load_state_dict(const TensorMap& state) {
  const int64_t t = static_cast<int64_t>(need(state, "step").item());
  MQ_CHECK(t >= 0, "trainer state: step {} is negative", t);
  Tensor g = restore_like(state, "meta_inputs.g_hat", g_all_);
  Tensor x = restore_like(state, "meta_inputs.w_tilde", x_all_);
  LstmState lstm;
  if (state.count("lstm.h")) {
    MQ_CHECK(meta_.config().kind == MetaKind::lstm_fc,
             "trainer state: holds an LSTM state but this run's meta network is {}",
             meta_kind_str(meta_.config().kind));
    Tensor like = Tensor::empty({rows_, meta_.config().hidden}, g_all_.dtype(), g_all_.device());
    lstm.h = restore_like(state, "lstm.h", like);
    lstm.c = restore_like(state, "lstm.c", like);
  }
  NamedTensors params = model_.named_parameters();
  std::vector<Tensor> grads(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string key = "grad." + params[i].first;
    if (state.count(key)) grads[i] = restore_like(state, key, params[i].second);
  }
  MQ_CHECK(t == 0 || std::any_of(grads.begin(), grads.end(), [](auto& g) { return g.defined(); }),
           "trainer state: step {} but no weight gradients (MetaQuant steps t > 0 read W.grad)", t);
  meta_.load_state_dict(strip_prefix(state, "meta."), true);
  opt_->load_state_dict(strip_prefix(state, "optim."));
  meta_opt_->load_state_dict(strip_prefix(state, "meta_optim."));
  g_all_ = g;
  x_all_ = x;
  state_ = lstm;
  t_ = t;
  for (size_t i = 0; i < params.size(); ++i)
    if (grads[i].defined()) params[i].second.set_grad(grads[i]);
}

// ---- schedules ----
LrSchedule LrSchedule::every(int n) {
  MQ_CHECK(n >= 1, "lr schedule: every {} epochs is invalid; use N >= 1 or 'adaptive'", n);
  LrSchedule s;
  s.every_ = n;
  return s;
}

LrSchedule LrSchedule::adaptive(int patience) {
  MQ_CHECK(patience >= 1, "lr schedule: adaptive patience {} must be >= 1", patience);
  LrSchedule s;
  s.patience_ = patience;
  return s;
}

LrSchedule LrSchedule::parse(const std::string& text) {
  if (text == "adaptive") return adaptive();
  int n = 0;
  MQ_CHECK(parse_whole(text, n) && n >= 1,
           "lr schedule '{}': expected a number of epochs N >= 1 or 'adaptive'", text);
  return every(n);
}

double LrSchedule::after_epoch(int epoch, double loss, double lr) {
  if (every_ > 0) return (epoch + 1) % every_ == 0 ? lr * 0.1 : lr;
  if (!have_best_ || loss < best_) {
    best_ = loss;
    have_best_ = true;
    bad_ = 0;
    return lr;
  }
  if (++bad_ >= patience_) {
    bad_ = 0;
    return lr * 0.1;
  }
  return lr;
}

// ---- epoch ----
EpochResult train_epoch(QuantTrainer& trainer, DataLoader& loader, Device device, int epoch,
                        const StepCallback& on_step, ThreadGovernor* governor) {
  loader.start_epoch(epoch);
  EpochResult r;
  double loss_sum = 0;
  int64_t correct = 0;
  auto t0 = std::chrono::steady_clock::now();
  auto since = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  size_t b = 0;
  BatchUploader images(device), labels(device);
  for (Batch batch; loader.next(batch); ++b) {
    Tensor x = images.upload(batch.images), y = labels.upload(batch.labels);
    const size_t images_in_step = batch.global_size ? batch.global_size : batch.size();
    if (governor) governor->step_begin();
    StepOutput out = trainer.step(x, y, static_cast<int64_t>(images_in_step));
    if (governor) governor->step_end(static_cast<int64_t>(batch.size()));
    loss_sum += out.loss * images_in_step;
    correct += out.correct;
    r.images += images_in_step;
    if (on_step) {
      StepReport s;
      s.batch_index = b;
      s.batches = loader.batches_per_epoch();
      s.loss = out.loss;
      s.running_loss = loss_sum / r.images;
      s.running_acc = 100.0 * correct / r.images;
      s.elapsed_s = since();
      s.images_per_s = r.images / std::max(s.elapsed_s, 1e-9);
      if (governor) s.threads = governor->threads(), s.max_threads = governor->max_threads();
      on_step(s);
    }
  }
  r.seconds = since();
  r.loss = r.images ? loss_sum / r.images : 0;
  r.acc = r.images ? 100.0 * correct / r.images : 0;
  r.images_per_s = r.images / std::max(r.seconds, 1e-9);
  return r;
}

}  // namespace mq
