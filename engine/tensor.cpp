#include "engine/tensor.h"

#include <cstring>

#include "engine/autograd.h"
#include "engine/cuda/cuda_api.h"
#include "engine/ops.h"

namespace mq {

namespace {
thread_local bool g_grad_mode = true;

template <class F>
void dispatch_any(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::i32: f(int32_t{}); break;
    case DType::i64: f(int64_t{}); break;
    case DType::u8: f(uint8_t{}); break;
  }
}
}  // namespace

NoGradGuard::NoGradGuard() : previous_(g_grad_mode) { g_grad_mode = false; }
NoGradGuard::~NoGradGuard() { g_grad_mode = previous_; }
bool grad_mode_enabled() { return g_grad_mode; }

TensorImpl& Tensor::impl() const {
  if (!impl_) fail("use of an undefined (empty) tensor");
  return *impl_;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (auto d : shape)
    MQ_CHECK(d >= 0, "cannot create a tensor of shape {}: negative dimension", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  int64_t i = d < 0 ? d + n : d;
  MQ_CHECK(i >= 0 && i < n, "dimension {} out of range for {}", d, describe());
  return shape()[i];
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return fmt::format("{}{} on {}", dtype_name(dtype()), shape_str(shape()), device().str());
}

void* Tensor::raw_data() {
  return static_cast<char*>(impl().storage->data) + impl().offset * dtype_size(dtype());
}
const void* Tensor::raw_data() const { return const_cast<Tensor*>(this)->raw_data(); }

double Tensor::item() const {
  MQ_CHECK(numel() == 1, "item() needs a one-element tensor, got {}", describe());
  Tensor host = is_cpu() ? *this : to(Device::cpu());
  double v = 0;
  dispatch_any(dtype(), [&](auto tag) {
    using T = decltype(tag);
    v = static_cast<double>(*host.data<T>());
  });
  return v;
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      MQ_CHECK(infer < 0, "reshape {} -> {}: only one dimension may be -1", describe(),
               shape_str(new_shape));
      infer = static_cast<int64_t>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    MQ_CHECK(known > 0 && numel() % known == 0, "reshape {} -> {}: sizes do not divide",
             describe(), shape_str(new_shape));
    s[infer] = numel() / known;
  }
  MQ_CHECK(shape_numel(s) == numel(), "reshape {} -> {}: element counts differ", describe(),
           shape_str(new_shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = this->impl().storage;
  impl->offset = this->impl().offset;
  impl->shape = s;
  impl->dtype = dtype();
  Tensor out(std::move(impl));
  Shape old_shape = shape();
  return record(out, "reshape", {*this},
                [old_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(old_shape)}; });
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = this->impl().storage;
  impl->offset = this->impl().offset;
  impl->shape = shape();
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor out = empty(shape(), dtype(), dev);
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor src = is_cpu() ? *this : to(Device::cpu());
  Tensor out = empty(shape(), t, Device::cpu());
  int64_t n = numel();
  dispatch_any(dtype(), [&](auto from_tag) {
    using From = decltype(from_tag);
    dispatch_any(t, [&](auto to_tag) {
      using To = decltype(to_tag);
      const From* s = src.data<From>();
      To* d = out.data<To>();
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<To>(s[i]);
    });
  });
  return is_cpu() ? out : out.to(device());
}

void Tensor::copy_(const Tensor& src) {
  MQ_CHECK(src.shape() == shape() && src.dtype() == dtype(),
           "copy_: source {} does not match destination {}", src.describe(), describe());
  size_t n = nbytes();
  if (n == 0) return;
  if (is_cpu() && src.is_cpu()) {
    std::memcpy(raw_data(), src.raw_data(), n);
  } else if (is_cuda() && src.is_cpu()) {
    cuda::copy_host_to_device(raw_data(), src.raw_data(), n, device().index);
  } else if (is_cpu() && src.is_cuda()) {
    cuda::copy_device_to_host(raw_data(), src.raw_data(), n, src.device().index);
  } else {
    MQ_CHECK(device() == src.device(), "copy_ between different CUDA devices ({} and {})",
             src.device().str(), device().str());
    cuda::copy_device_to_device(raw_data(), src.raw_data(), n, device().index);
  }
}

void Tensor::fill_(double value) {
  if (numel() == 0) return;
  if (value == 0.0) {
    if (is_cpu())
      std::memset(raw_data(), 0, nbytes());
    else
      cuda::memset_device(raw_data(), 0, nbytes(), device().index);
    return;
  }
  if (is_cuda()) {
    copy_(full(shape(), value, dtype(), Device::cpu()));
    return;
  }
  int64_t n = numel();
  dispatch_any(dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(value);
  });
}

Tensor& Tensor::set_requires_grad(bool on) {
  MQ_CHECK(!on || is_floating(dtype()), "requires_grad needs a floating tensor, got {}",
           describe());
  MQ_CHECK(is_leaf() || on, "cannot clear requires_grad of a non-leaf tensor; use detach()");
  impl().requires_grad = on;
  return *this;
}

void Tensor::set_grad(const Tensor& g) {
  if (!g.defined()) {
    impl().grad.reset();
    return;
  }
  MQ_CHECK(g.shape() == shape() && g.dtype() == dtype() && g.device() == device(),
           "set_grad: gradient {} does not match tensor {}", g.describe(), describe());
  impl().grad = g.impl_ptr();
}

void Tensor::retain_grad() {
  MQ_CHECK(requires_grad(), "retain_grad() on a tensor that does not require grad");
  // A leaf keeps its gradient anyway; an intermediate's node hands it back (autograd.h).
  if (impl().grad_fn) impl().grad_fn->retained = impl_;
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  run_backward(*this, grad, retain_graph);
}

// ---- validation helpers ----
void check_defined(const Tensor& t, const char* op, const char* arg) {
  MQ_CHECK(t.defined(), "{}: argument '{}' is an undefined tensor", op, arg);
}
void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  MQ_CHECK(a.device() == b.device(), "{}: tensors on different devices ({} and {}); move one with .to()",
           op, a.describe(), b.describe());
}
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  MQ_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch ({} and {})", op, a.describe(),
           b.describe());
}
void check_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  MQ_CHECK(a.shape() == b.shape(), "{}: shape mismatch ({} and {})", op, a.describe(),
           b.describe());
}
void check_floating(const Tensor& t, const char* op, const char* arg) {
  MQ_CHECK(is_floating(t.dtype()), "{}: argument '{}' must be f32 or f64, got {}", op, arg,
           t.describe());
}
void check_dim(const Tensor& t, int64_t dim, const char* op, const char* arg) {
  MQ_CHECK(t.dim() == dim, "{}: argument '{}' must have {} dimensions, got {}", op, arg, dim,
           t.describe());
}

Tensor flat_view(const Tensor& flat, int64_t offset, const Shape& shape) {
  MQ_CHECK(offset >= 0 && offset + shape_numel(shape) <= flat.numel(),
           "flat_view: {} elements from {} do not fit in {}", shape_numel(shape), offset,
           flat.describe());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = flat.impl().storage;
  impl->offset = flat.impl().offset + static_cast<size_t>(offset);
  impl->shape = shape;
  impl->dtype = flat.dtype();
  return Tensor(impl);
}

Tensor narrow_rows(const Tensor& t, int64_t begin, int64_t end) {
  MQ_CHECK(t.defined() && t.dim() >= 1 && begin >= 0 && begin <= end && end <= t.size(0),
           "narrow_rows: rows [{}, {}) of {}", begin, end, t.defined() ? t.describe() : "undefined");
  const int64_t row = t.size(0) ? t.numel() / t.size(0) : 0;
  Shape shape = t.shape();
  shape[0] = end - begin;
  return flat_view(t, begin * row, shape);
}

}  // namespace mq
