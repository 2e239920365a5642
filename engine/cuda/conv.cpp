// conv2d forward / backward-input / backward-weight through cuDNN. Each distinct shape gets a
// plan: descriptors built once, and per direction the algorithm chosen once by cudnnFind*Ex
// (timed on the real buffers), filtered by the TF32 and determinism settings, then cached.
#include <array>
#include <climits>
#include <compare>
#include <map>
#include <memory>
#include <mutex>

#include "engine/backend.h"
#include "engine/cuda/context.h"

namespace mq::cuda_ops {
namespace {
using cuda::DeviceBuffer;
using cuda::DeviceContext;

constexpr size_t kMaxSearchWorkspace = size_t{512} << 20;

struct ConvKey {
  int device;
  std::array<int, 8> dims;  // n c h w k r s, stride
  int pad;
  int groups;
  bool tf32, det;
  auto operator<=>(const ConvKey&) const = default;
};

// RAII wrappers: cuDNN descriptors are created once per plan and never copied.
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class Desc {
 public:
  Desc() { MQ_CUDNN_CHECK(Create(&d_)); }
  ~Desc() { Destroy(d_); }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  T get() const { return d_; }

 private:
  T d_{};
};
using TensorDesc = Desc<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor,
                        cudnnDestroyTensorDescriptor>;
using FilterDesc = Desc<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor,
                        cudnnDestroyFilterDescriptor>;
using ConvDesc = Desc<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                      cudnnDestroyConvolutionDescriptor>;

enum Dir { kFwd = 0, kBwdData = 1, kBwdFilter = 2 };

struct Choice {
  bool ready = false;
  int algo = 0;
  size_t workspace = 0;
};

struct Plan {
  TensorDesc x, y;
  FilterDesc w;
  std::array<ConvDesc, 3> conv;  // one per direction: each carries its chosen math type
  std::array<Choice, 3> choice;
};

// For f32, CUDNN_DEFAULT_MATH lets cuDNN use TF32 tensor cores on Ampere and later; without
// TF32 the search is restricted to plain FMA kernels (as PyTorch does).
cudnnMathType_t search_math(bool tf32) { return tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH; }

int as_int(int64_t v, const char* what) {
  MQ_CHECK(v >= 0 && v <= INT_MAX, "conv2d: {} = {} exceeds cuDNN's int range", what, v);
  return static_cast<int>(v);
}

std::mutex g_plans_mu;
std::map<ConvKey, std::unique_ptr<Plan>>& plans() {
  static auto* m = new std::map<ConvKey, std::unique_ptr<Plan>>();  // lives to process exit
  return *m;
}

Plan& plan_for(int device, const Tensor& x, const Tensor& w, const Shape& y, Conv2dParams p) {
  ConvKey key{device,
              {as_int(x.size(0), "N"), as_int(x.size(1), "C"), as_int(x.size(2), "H"),
               as_int(x.size(3), "W"), as_int(w.size(0), "K"), as_int(w.size(2), "R"),
               as_int(w.size(3), "S"), as_int(p.stride, "stride")},
              as_int(p.padding, "padding"), as_int(p.groups, "groups"), cuda::allow_tf32(),
              cuda::deterministic()};
  std::lock_guard<std::mutex> lock(g_plans_mu);
  auto& slot = plans()[key];
  if (slot) return *slot;
  auto plan = std::make_unique<Plan>();
  const auto& d = key.dims;
  MQ_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                            d[0], d[1], d[2], d[3]));
  // the filter holds C / groups input channels; cuDNN takes the group count on the conv
  MQ_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                            d[4], d[1] / key.groups, d[5], d[6]));
  MQ_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                            as_int(y[0], "N"), as_int(y[1], "K"),
                                            as_int(y[2], "P"), as_int(y[3], "Q")));
  for (auto& c : plan->conv) {
    MQ_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(c.get(), key.pad, key.pad, d[7], d[7], 1, 1,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    MQ_CUDNN_CHECK(cudnnSetConvolutionMathType(c.get(), search_math(key.tf32)));
    MQ_CUDNN_CHECK(cudnnSetConvolutionGroupCount(c.get(), key.groups));
  }
  slot = std::move(plan);
  return *slot;
}

template <class Perf>
bool acceptable(const Perf& perf, size_t max_workspace) {
  if (perf.status != CUDNN_STATUS_SUCCESS || perf.memory > max_workspace) return false;
  if (!cuda::allow_tf32() && (perf.mathType == CUDNN_TENSOR_OP_MATH ||
                              perf.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
    return false;
  if (cuda::deterministic() && perf.determinism != CUDNN_DETERMINISTIC) return false;
  return true;
}

// Raw scratch memory for the one-time algorithm search: taken straight from the driver and
// returned at once, so a large search buffer never lingers in the allocator's cache.
class SearchWorkspace {
 public:
  explicit SearchWorkspace(size_t want) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) want = std::min(want, free_b / 4);
    for (size_t bytes = std::min(want, kMaxSearchWorkspace); bytes >= (1 << 20); bytes /= 2) {
      if (cudaMalloc(&ptr_, bytes) == cudaSuccess) {
        size_ = bytes;
        return;
      }
      cudaGetLastError();
      ptr_ = nullptr;
    }
  }
  ~SearchWorkspace() {
    if (ptr_) cudaFree(ptr_);
  }
  SearchWorkspace(const SearchWorkspace&) = delete;
  SearchWorkspace& operator=(const SearchWorkspace&) = delete;
  void* get() const { return ptr_; }
  size_t size() const { return size_; }

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

// Picks the algorithm of one direction: the fastest acceptable result of FindEx, else the
// first acceptable heuristic (Get_v7) result. `find` and `get` wrap the per-direction calls.
template <class Perf, int kCount, class FindFn, class GetFn, class SetMath>
Choice choose(const char* dir, size_t search_bytes, FindFn find, GetFn get, SetMath set_math) {
  std::array<Perf, kCount> perf{};
  int returned = 0;
  {
    SearchWorkspace ws(search_bytes);
    if (find(perf.data(), kCount, &returned, ws.get(), ws.size()) == CUDNN_STATUS_SUCCESS) {
      for (int i = 0; i < returned; ++i)
        if (acceptable(perf[i], ws.size())) {
          set_math(perf[i].mathType);
          return {true, static_cast<int>(perf[i].algo), perf[i].memory};
        }
    }
  }
  returned = 0;
  MQ_CUDNN_CHECK(get(perf.data(), kCount, &returned));
  for (int i = 0; i < returned; ++i)
    if (acceptable(perf[i], kMaxSearchWorkspace)) {
      set_math(perf[i].mathType);
      return {true, static_cast<int>(perf[i].algo), perf[i].memory};
    }
  fail("conv2d {}: cuDNN offers no usable algorithm for this shape (tf32 {}, deterministic {})",
       dir, cuda::allow_tf32(), cuda::deterministic());
}

// Sets the math type the chosen algorithm was timed with; without TF32 it stays FMA-only
// whatever the result reports (a reported DEFAULT_MATH would permit TF32 again).
auto math_setter(const ConvDesc& c) {
  return [&c](cudnnMathType_t m) {
    if (!cuda::allow_tf32()) m = CUDNN_FMA_MATH;
    MQ_CUDNN_CHECK(cudnnSetConvolutionMathType(c.get(), m));
  };
}

const float kOne = 1.0f, kZero = 0.0f;
}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p) {
  if (y.numel() == 0) return;
  DeviceContext& ctx = cuda::context(x.device().index);
  Plan& plan = plan_for(ctx.device, x, w, y.shape(), p);
  const auto& conv = plan.conv[kFwd];
  Choice& ch = plan.choice[kFwd];
  const void* xp = x.raw_data();
  const void* wp = w.raw_data();
  void* yp = y.raw_data();
  if (!ch.ready) {
    size_t want = 0;
    for (int a = 0; a < CUDNN_CONVOLUTION_FWD_ALGO_COUNT; ++a) {
      size_t s = 0;
      if (cudnnGetConvolutionForwardWorkspaceSize(ctx.cudnn, plan.x.get(), plan.w.get(),
                                                  conv.get(), plan.y.get(),
                                                  cudnnConvolutionFwdAlgo_t(a),
                                                  &s) == CUDNN_STATUS_SUCCESS)
        want = std::max(want, s);
    }
    ch = choose<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT>(
        "forward", want,
        [&](auto* perf, int n, int* got, void* ws, size_t ws_size) {
          return cudnnFindConvolutionForwardAlgorithmEx(ctx.cudnn, plan.x.get(), xp, plan.w.get(),
                                                        wp, conv.get(), plan.y.get(), yp, n, got,
                                                        perf, ws, ws_size);
        },
        [&](auto* perf, int n, int* got) {
          return cudnnGetConvolutionForwardAlgorithm_v7(ctx.cudnn, plan.x.get(), plan.w.get(),
                                                        conv.get(), plan.y.get(), n, got, perf);
        },
        math_setter(conv));
  }
  DeviceBuffer ws(ctx, ch.workspace);
  MQ_CUDNN_CHECK(cudnnConvolutionForward(ctx.cudnn, &kOne, plan.x.get(), xp, plan.w.get(), wp,
                                         conv.get(), cudnnConvolutionFwdAlgo_t(ch.algo), ws.get(),
                                         ch.workspace, &kZero, plan.y.get(), yp));
  MQ_CUDA_DEBUG_SYNC(ctx.stream, "conv2d_forward");
}

void conv2d_backward_input(const Tensor& gy, const Tensor& w, Tensor& gx, Conv2dParams p) {
  if (gx.numel() == 0) return;
  if (gy.numel() == 0) {
    gx.zero_();
    return;
  }
  DeviceContext& ctx = cuda::context(gy.device().index);
  Plan& plan = plan_for(ctx.device, gx, w, gy.shape(), p);
  const auto& conv = plan.conv[kBwdData];
  Choice& ch = plan.choice[kBwdData];
  const void* gyp = gy.raw_data();
  const void* wp = w.raw_data();
  void* gxp = gx.raw_data();
  if (!ch.ready) {
    size_t want = 0;
    for (int a = 0; a < CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT; ++a) {
      size_t s = 0;
      if (cudnnGetConvolutionBackwardDataWorkspaceSize(
              ctx.cudnn, plan.w.get(), plan.y.get(), conv.get(), plan.x.get(),
              cudnnConvolutionBwdDataAlgo_t(a), &s) == CUDNN_STATUS_SUCCESS)
        want = std::max(want, s);
    }
    ch = choose<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>(
        "backward-input", want,
        [&](auto* perf, int n, int* got, void* ws, size_t ws_size) {
          return cudnnFindConvolutionBackwardDataAlgorithmEx(
              ctx.cudnn, plan.w.get(), wp, plan.y.get(), gyp, conv.get(), plan.x.get(), gxp, n,
              got, perf, ws, ws_size);
        },
        [&](auto* perf, int n, int* got) {
          return cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx.cudnn, plan.w.get(),
                                                             plan.y.get(), conv.get(),
                                                             plan.x.get(), n, got, perf);
        },
        math_setter(conv));
  }
  DeviceBuffer ws(ctx, ch.workspace);
  MQ_CUDNN_CHECK(cudnnConvolutionBackwardData(
      ctx.cudnn, &kOne, plan.w.get(), wp, plan.y.get(), gyp, conv.get(),
      cudnnConvolutionBwdDataAlgo_t(ch.algo), ws.get(), ch.workspace, &kZero, plan.x.get(), gxp));
  MQ_CUDA_DEBUG_SYNC(ctx.stream, "conv2d_backward_input");
}

void conv2d_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Conv2dParams p) {
  if (gw.numel() == 0) return;
  if (gy.numel() == 0) {
    gw.zero_();
    return;
  }
  DeviceContext& ctx = cuda::context(gy.device().index);
  Plan& plan = plan_for(ctx.device, x, gw, gy.shape(), p);
  const auto& conv = plan.conv[kBwdFilter];
  Choice& ch = plan.choice[kBwdFilter];
  const void* gyp = gy.raw_data();
  const void* xp = x.raw_data();
  void* gwp = gw.raw_data();
  if (!ch.ready) {
    size_t want = 0;
    for (int a = 0; a < CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT; ++a) {
      size_t s = 0;
      if (cudnnGetConvolutionBackwardFilterWorkspaceSize(
              ctx.cudnn, plan.x.get(), plan.y.get(), conv.get(), plan.w.get(),
              cudnnConvolutionBwdFilterAlgo_t(a), &s) == CUDNN_STATUS_SUCCESS)
        want = std::max(want, s);
    }
    ch = choose<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>(
        "backward-weight", want,
        [&](auto* perf, int n, int* got, void* ws, size_t ws_size) {
          return cudnnFindConvolutionBackwardFilterAlgorithmEx(
              ctx.cudnn, plan.x.get(), xp, plan.y.get(), gyp, conv.get(), plan.w.get(), gwp, n,
              got, perf, ws, ws_size);
        },
        [&](auto* perf, int n, int* got) {
          return cudnnGetConvolutionBackwardFilterAlgorithm_v7(ctx.cudnn, plan.x.get(),
                                                               plan.y.get(), conv.get(),
                                                               plan.w.get(), n, got, perf);
        },
        math_setter(conv));
  }
  DeviceBuffer ws(ctx, ch.workspace);
  MQ_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      ctx.cudnn, &kOne, plan.x.get(), xp, plan.y.get(), gyp, conv.get(),
      cudnnConvolutionBwdFilterAlgo_t(ch.algo), ws.get(), ch.workspace, &kZero, plan.w.get(),
      gwp));
  MQ_CUDA_DEBUG_SYNC(ctx.stream, "conv2d_backward_weight");
}

}  // namespace mq::cuda_ops
