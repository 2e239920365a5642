#pragma once
// Tensor: a handle to a contiguous, row-major array with a dtype and a device, sharing a
// refcounted Storage. Copying a Tensor copies the handle (like PyTorch); clone() copies data.
// Autograd state (requires_grad, grad, grad_fn) lives on the TensorImpl.
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "kernels/base/error.h"
#include "engine/shape.h"
#include "engine/storage.h"

namespace mq {

struct Node;
class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::f32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation ----
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu());
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                            Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::f32) { return full({}, value, dtype); }

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  size_t nbytes() const { return numel() * dtype_size(dtype()); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  bool is_cpu() const { return device().is_cpu(); }
  bool is_cuda() const { return device().is_cuda(); }
  std::string describe() const;  // "f32[2, 3] on cpu"
  bool same_storage(const Tensor& o) const { return impl().storage == o.impl().storage; }

  // ---- data access ----
  // The one typed pointer to the elements, on the tensor's own device (a device pointer for a
  // CUDA tensor: only kernels may dereference it; host code reads with to_vector() or item()).
  // A dtype other than T is an error, never a cast; an undefined tensor gives nullptr, which
  // the kernels read as "absent" (their optional arguments). A Tensor is a handle, so a const
  // handle still gives writable data, as PyTorch's data_ptr<T>() does.
  template <class T> T* data() const;
  void* raw_data();  // untyped bytes, any device: copies and serialization
  const void* raw_data() const;
  double item() const;                        // one-element tensor, any device
  template <class T> std::vector<T> to_vector() const;  // copies to host; dtype must match

  // ---- views and copies ----
  Tensor reshape(const Shape& shape) const;  // shares storage; autograd-aware; one dim may be -1
  Tensor detach() const;  // shares storage, no autograd history
  Tensor clone() const;   // deep copy on the same device, no history
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  void copy_(const Tensor& src);  // same shape and dtype, any devices
  void fill_(double value);
  void zero_() { fill_(0.0); }

  // ---- autograd ----
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool on = true);
  Tensor grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
  void set_grad(const Tensor& g);
  void zero_grad() { impl().grad.reset(); }
  void retain_grad();
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  // Back-propagates from this tensor. A non-scalar tensor needs an explicit gradient.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;

  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// A view of `numel(shape)` elements of the contiguous tensor `flat` from element `offset`
// (shares storage, no history).
Tensor flat_view(const Tensor& flat, int64_t offset, const Shape& shape);
// Rows [begin, end) of dim 0 as a view sharing storage (no history): a slice of a batch.
Tensor narrow_rows(const Tensor& t, int64_t begin, int64_t end);

// RAII scope in which ops record no autograd history (like torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};
bool grad_mode_enabled();

// Shared validation helpers for op entry points (throw mq::Error with the op's name).
void check_defined(const Tensor& t, const char* op, const char* arg);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op);
void check_same_shape(const Tensor& a, const Tensor& b, const char* op);
void check_floating(const Tensor& t, const char* op, const char* arg);
void check_dim(const Tensor& t, int64_t dim, const char* op, const char* arg);

// ---- template definitions ----
template <class T>
T* Tensor::data() const {
  if (!defined()) return nullptr;
  MQ_CHECK(dtype() == dtype_of<T>(), "data<{}>() on a {} tensor", dtype_name(dtype_of<T>()),
           describe());
  return static_cast<T*>(impl().storage->data) + impl().offset;
}
template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  MQ_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
           "from_vector: {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>(), Device::cpu());
  std::copy(values.begin(), values.end(), t.data<T>());
  return device.is_cpu() ? t : t.to(device);
}
template <class T>
std::vector<T> Tensor::to_vector() const {
  MQ_CHECK(dtype() == dtype_of<T>(), "to_vector<{}>() on a {} tensor", dtype_name(dtype_of<T>()),
           describe());
  Tensor host = is_cpu() ? *this : to(Device::cpu());
  const T* p = host.data<T>();
  return std::vector<T>(p, p + numel());
}

}  // namespace mq
