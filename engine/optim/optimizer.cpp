#include "engine/optim/optimizer.h"

#include <cmath>

#include "engine/dispatch.h"
#include "engine/ops.h"
#include "kernels/optim/adam_math.h"
#include "kernels/optim/adam.h"

namespace mq {

// ---- Optimizer ----
Optimizer::Optimizer(std::vector<Tensor> params, double lr, const char* name)
    : params_(std::move(params)), steps_(params_.size(), 0), lr_(lr), name_(name) {
  MQ_CHECK(lr >= 0 && std::isfinite(lr), "{}: learning rate must be >= 0, got {}", name, lr);
  for (size_t i = 0; i < params_.size(); ++i) {
    MQ_CHECK(params_[i].defined() && is_floating(params_[i].dtype()),
             "{}: parameter {} must be a defined floating tensor, got {}", name, i,
             params_[i].describe());
  }
}

void Optimizer::descend() {
  NoGradGuard no_grad;
  for (auto& p : params_) {
    Tensor g = p.grad();
    if (g.defined()) axpy_inplace(p, -lr_, g);
  }
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> out;
  out["lr"] = Tensor::scalar(lr_, DType::f64);
  for (size_t i = 0; i < params_.size(); ++i)
    out[std::to_string(i) + ".step"] = Tensor::scalar(double(steps_[i]), DType::i64);
  for (auto& [name, list] : const_cast<Optimizer*>(this)->buffers())
    for (size_t i = 0; i < list->size(); ++i)
      if ((*list)[i].defined()) out[std::to_string(i) + "." + name] = (*list)[i];
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& state) {
  auto get = [&](const std::string& key) -> const Tensor* {
    auto it = state.find(key);
    return it == state.end() ? nullptr : &it->second;
  };
  const Tensor* lr = get("lr");
  MQ_CHECK(lr && lr->numel() == 1, "{} state: missing 'lr' (not an optimizer checkpoint?)",
           name_);
  size_t used = 1;
  std::vector<int64_t> steps(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor* s = get(std::to_string(i) + ".step");
    MQ_CHECK(s && s->numel() == 1,
             "{} state: missing '{}.step' (checkpoint of a model with fewer parameters?)", name_,
             i);
    steps[i] = static_cast<int64_t>(s->item());
    ++used;
  }
  auto lists = buffers();
  std::vector<std::vector<Tensor>> loaded;
  for (auto& [name, list] : lists) {
    loaded.emplace_back(params_.size());
    for (size_t i = 0; i < params_.size(); ++i) {
      const Tensor* t = get(std::to_string(i) + "." + name);
      if (!t) continue;
      MQ_CHECK(t->shape() == params_[i].shape() && t->dtype() == params_[i].dtype(),
               "{} state: '{}.{}' is {} but parameter {} is {}", name_, i, name, t->describe(), i,
               params_[i].describe());
      loaded.back()[i] = t->to(params_[i].device()).clone();
      ++used;
    }
  }
  MQ_CHECK(used == state.size(),
           "{} state: {} unexpected entries (checkpoint of another optimizer or model?)", name_,
           state.size() - used);
  lr_ = lr->item();
  steps_ = steps;
  for (size_t k = 0; k < lists.size(); ++k) *lists[k].second = std::move(loaded[k]);
}

// ---- SGD ----
SGD::SGD(std::vector<Tensor> params, double lr, double m, double wd)
    : Optimizer(std::move(params), lr, "SGD"), momentum(m), weight_decay(wd),
      momentum_buffer_(params_.size()) {
  MQ_CHECK(m >= 0 && wd >= 0, "SGD: momentum ({}) and weight decay ({}) must be >= 0", m, wd);
}

std::vector<std::pair<std::string, std::vector<Tensor>*>> SGD::buffers() {
  return {{"momentum_buffer", &momentum_buffer_}};
}

Tensor SGD::direction(size_t i) {
  Tensor& p = param(i);
  Tensor d = p.grad();
  if (weight_decay != 0) {
    d = d.clone();
    axpy_inplace(d, weight_decay, p);
  }
  if (momentum != 0) {
    Tensor& buf = momentum_buffer_[i];
    if (!buf.defined()) {
      buf = d.clone();  // PyTorch: the first buffer is d itself
    } else {
      buf = mul_scalar(buf, momentum);
      add_inplace(buf, d);
    }
    d = buf;
  }
  ++steps_[i];
  return d;
}

void SGD::step() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!param(i).grad().defined()) continue;
    Tensor d = direction(i);
    axpy_inplace(param(i), -lr_, d);
  }
}

void SGD::refine() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!param(i).grad().defined()) continue;
    Tensor d = direction(i);
    // .grad gets its own copy: d may be the momentum buffer or the gradient itself.
    param(i).set_grad(d.same_storage(param(i).grad()) ? d : d.clone());
  }
}

// ---- Adam ----
Adam::Adam(std::vector<Tensor> params, double lr, double b1, double b2, double e, double wd)
    : Optimizer(std::move(params), lr, "Adam"), beta1(b1), beta2(b2), eps(e), weight_decay(wd),
      exp_avg_(params_.size()), exp_avg_sq_(params_.size()) {
  MQ_CHECK(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1, "Adam: betas must be in [0, 1), got {}, {}",
           b1, b2);
  MQ_CHECK(e >= 0 && wd >= 0, "Adam: eps ({}) and weight decay ({}) must be >= 0", e, wd);
}

std::vector<std::pair<std::string, std::vector<Tensor>*>> Adam::buffers() {
  return {{"exp_avg", &exp_avg_}, {"exp_avg_sq", &exp_avg_sq_}};
}

// fp-contract=off: the Adam math rounds as PyTorch does (see adam_math.h).
#if defined(__clang__)  // the same for clang (the sanitizer build), which ignores GCC's pragma
#pragma float_control(push)
#pragma clang fp contract(off)
#else
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
void Adam::update(bool refine_only) {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = param(i);
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = Tensor::zeros(p.shape(), p.dtype(), p.device());
      exp_avg_sq_[i] = Tensor::zeros(p.shape(), p.dtype(), p.device());
    }
    int64_t step = ++steps_[i];
    double bc1 = 1 - std::pow(beta1, double(step));
    double bc2 = 1 - std::pow(beta2, double(step));
    // refine() writes d into a fresh .grad; step() writes p and leaves .grad untouched.
    Tensor out = refine_only ? Tensor::empty(p.shape(), p.dtype(), p.device()) : p;
    auto scalars = [&](auto tag) {
      using T = decltype(tag);
      return optim::AdamScalars<T>{T(beta1),
                                   T(1 - beta1),
                                   T(beta2),
                                   T(1 - beta2),
                                   T(eps),
                                   T(weight_decay),
                                   T(refine_only ? std::sqrt(bc2) / bc1 : lr_ / bc1),
                                   T(std::sqrt(bc2))};
    };
    auto cuda_update = [&](auto stream) {
      kernels::adam_cuda(p.data<float>(), g.data<float>(), exp_avg_[i].data<float>(),
                         exp_avg_sq_[i].data<float>(), out.data<float>(), p.numel(),
                         scalars(float{}), refine_only, stream);
    };
    on_device(p, "Adam", [&](auto tag) {
      using T = decltype(tag);
      const optim::AdamScalars<T> s = scalars(tag);
      const T* gp = g.data<T>();
      T* pp = p.data<T>();
      T* m = exp_avg_[i].data<T>();
      T* v = exp_avg_sq_[i].data<T>();
      T* o = out.data<T>();
      int64_t n = p.numel();
      for (int64_t k = 0; k < n; ++k) {
        T gk = gp[k];
        optim::adam_moments(gk, pp[k], m[k], v[k], s);
        o[k] = refine_only ? optim::adam_refined(m[k], v[k], s) : optim::adam_step(pp[k], m[k], v[k], s);
      }
    }, cuda_update);
    if (refine_only) p.set_grad(out);
  }
}
#if defined(__clang__)
#pragma float_control(pop)
#else
#pragma GCC pop_options
#endif

void Adam::step() { update(false); }
void Adam::refine() { update(true); }

// ---- factory ----
std::unique_ptr<Optimizer> make_optimizer(const std::string& kind, std::vector<Tensor> params,
                                          double lr, bool metaquant) {
  double wd = metaquant ? kMetaQuantWeightDecay : 0.0;
  if (kind == "SGD") return std::make_unique<SGD>(std::move(params), lr);
  if (kind == "SGD-M")
    return std::make_unique<SGD>(std::move(params), lr, kMetaQuantMomentum, wd);
  if (kind == "Adam")
    return std::make_unique<Adam>(std::move(params), lr, 0.9, 0.999, 1e-8, wd);
  fail("unknown optimizer '{}' (choose SGD, SGD-M or Adam)", kind);
}

}  // namespace mq
