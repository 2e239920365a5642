// The f32 CPU convolution passes on oneDNN (see conv_library.h). Each shape's primitives and
// reorders are built once and kept per thread; the blocked copies of the operands live in a few
// grow-only buffers shared by all shapes, and oneDNN's scratchpad is ours too, so a step
// allocates nothing after the first.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "engine/cpu/conv_library.h"
#include "kernels/nn/sgemm_kernel.h"
#include "kernels/base/error.h"

#if MQ_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace mq::cpu {
namespace {

enum class Choice { defaults, own, onednn };
Choice g_choice = Choice::defaults;

Choice env_choice() {
  static const Choice env = [] {
    const char* v = std::getenv("MQ_CPU_CONV");
    if (!v || !*v) return Choice::defaults;
    if (std::strcmp(v, "own") == 0) return Choice::own;
    if (std::strcmp(v, "onednn") == 0) return Choice::onednn;
    fail("MQ_CPU_CONV={}: expected own or onednn (or unset for the defaults)", v);
  }();
  return env;
}

}  // namespace

bool onednn_built() { return MQ_WITH_DNNL != 0; }

ConvLibrary conv_library(ConvPass pass, int64_t c, int64_t k, int64_t r, int64_t s,
                         Conv2dParams p) {
  if (!onednn_built()) return ConvLibrary::own;
  const Choice choice = g_choice != Choice::defaults ? g_choice : env_choice();
  if (choice == Choice::own) return ConvLibrary::own;
  if (choice == Choice::onednn) return ConvLibrary::onednn;
  bool onednn = true;
  // mq's masked-row forward beats oneDNN's on same stride-1 convs (conv_bench --library).
  const bool same = p.stride == 1 && r == s && 2 * p.padding + 1 == r;
  if (pass == ConvPass::forward)
    onednn = k >= 32 && r * s > 1 && onednn_avx512() && !(same && MQ_SGEMM_MASKED_ROWS);
  // oneDNN's input gradient sums in an order that flips the sign of a final weight in the
  // golden case metaquant-bwn-adam-MultiFC beyond the golden rule; mq's own passes them all.
  if (pass == ConvPass::backward_input) onednn = false;
  if (pass == ConvPass::backward_weight) onednn = c >= 16;
  return onednn ? ConvLibrary::onednn : ConvLibrary::own;
}

void set_conv_library(ConvLibrary lib) {
  g_choice = lib == ConvLibrary::own ? Choice::own : Choice::onednn;
}
void reset_conv_library() { g_choice = Choice::defaults; }

const char* conv_library_name(ConvLibrary lib) {
  return lib == ConvLibrary::onednn ? "oneDNN" : "mq";
}

#if MQ_WITH_DNNL
bool onednn_avx512() {
  using dnnl::cpu_isa;
  static const bool avx512 = [] {
    const cpu_isa isa = dnnl::get_effective_cpu_isa();
    return isa == cpu_isa::avx512_core || isa == cpu_isa::avx512_core_vnni ||
           isa == cpu_isa::avx512_core_bf16 || isa == cpu_isa::avx512_core_amx;
  }();
  return avx512;
}

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// Grow-only buffers: the blocked copies of (at most) three operands and the scratchpad.
struct Buffers {
  std::vector<float> slot[4];
  void* get(int i, size_t bytes) {
    auto& b = slot[i];
    if (b.size() * sizeof(float) < bytes) b.resize((bytes + sizeof(float) - 1) / sizeof(float));
    return b.data();
  }
};

// One operand: the user's plain layout, the primitive's, and the reorder between them when
// they differ (direction given by `to_user`).
struct Operand {
  memory::desc user, lib;
  std::optional<dnnl::reorder> reorder;
  void init(const memory::desc& user_md, const memory::desc& lib_md, bool to_user) {
    user = user_md;
    lib = lib_md;
    if (user == lib) return;
    auto& eng = cpu_engine();
    reorder = to_user ? dnnl::reorder(dnnl::reorder::primitive_desc(eng, lib, eng, user))
                      : dnnl::reorder(dnnl::reorder::primitive_desc(eng, user, eng, lib));
  }
};

struct Plan {
  dnnl::primitive prim;
  Operand a, b, out;  // forward: src, weights -> dst; bwd data: diff_dst, weights -> diff_src;
                      // bwd weights: src, diff_dst -> diff_weights
  int arg_a, arg_b, arg_out;
  memory::desc scratch;
};

// pass, x dims, K, R, S, P, Q, stride, padding, threads
using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t, int64_t, int>;

memory::desc plain(const memory::dims& d, Tag tag) { return {d, memory::data_type::f32, tag}; }
memory::desc any(const memory::dims& d) { return {d, memory::data_type::f32, Tag::any}; }

Plan make_plan(ConvPass pass, const memory::dims& xd, const memory::dims& wd,
               const memory::dims& yd, int64_t stride, int64_t pad) {
  using namespace dnnl;
  auto& eng = cpu_engine();
  const memory::dims strides{stride, stride}, padding{pad, pad};
  primitive_attr attr;
  attr.set_scratchpad_mode(scratchpad_mode::user);
  const auto fwd_desc = convolution_forward::desc(prop_kind::forward_training,
                                                  algorithm::convolution_direct, any(xd), any(wd),
                                                  any(yd), strides, padding, padding);
  Plan plan;
  if (pass == ConvPass::forward) {
    convolution_forward::primitive_desc pd(fwd_desc, attr, eng);
    plan.prim = convolution_forward(pd);
    plan.a.init(plain(xd, Tag::nchw), pd.src_desc(), false);
    plan.b.init(plain(wd, Tag::oihw), pd.weights_desc(), false);
    plan.out.init(plain(yd, Tag::nchw), pd.dst_desc(), true);
    plan.arg_a = DNNL_ARG_SRC, plan.arg_b = DNNL_ARG_WEIGHTS, plan.arg_out = DNNL_ARG_DST;
    plan.scratch = pd.scratchpad_desc();
    return plan;
  }
  convolution_forward::primitive_desc hint(fwd_desc, eng);
  if (pass == ConvPass::backward_input) {
    convolution_backward_data::desc d(algorithm::convolution_direct, any(xd), any(wd), any(yd),
                                      strides, padding, padding);
    convolution_backward_data::primitive_desc pd(d, attr, eng, hint);
    plan.prim = convolution_backward_data(pd);
    plan.a.init(plain(yd, Tag::nchw), pd.diff_dst_desc(), false);
    plan.b.init(plain(wd, Tag::oihw), pd.weights_desc(), false);
    plan.out.init(plain(xd, Tag::nchw), pd.diff_src_desc(), true);
    plan.arg_a = DNNL_ARG_DIFF_DST, plan.arg_b = DNNL_ARG_WEIGHTS,
    plan.arg_out = DNNL_ARG_DIFF_SRC;
    plan.scratch = pd.scratchpad_desc();
    return plan;
  }
  convolution_backward_weights::desc d(algorithm::convolution_direct, any(xd), any(wd), any(yd),
                                       strides, padding, padding);
  convolution_backward_weights::primitive_desc pd(d, attr, eng, hint);
  plan.prim = convolution_backward_weights(pd);
  plan.a.init(plain(xd, Tag::nchw), pd.src_desc(), false);
  plan.b.init(plain(yd, Tag::nchw), pd.diff_dst_desc(), false);
  plan.out.init(plain(wd, Tag::oihw), pd.diff_weights_desc(), true);
  plan.arg_a = DNNL_ARG_SRC, plan.arg_b = DNNL_ARG_DIFF_DST, plan.arg_out = DNNL_ARG_DIFF_WEIGHTS;
  plan.scratch = pd.scratchpad_desc();
  return plan;
}

// Runs `pass` with plain operands a, b (read) and out (written).
void run(ConvPass pass, const memory::dims& xd, const memory::dims& wd, const memory::dims& yd,
         int64_t stride, int64_t pad, const float* a, const float* b, float* out) {
  thread_local std::map<Key, Plan> plans;
  thread_local Buffers buffers;
  thread_local dnnl::stream stream(cpu_engine());
  // A primitive splits its work for the thread count it was made for: one per count.
  const Key key{int(pass), xd[0], xd[1], xd[2], xd[3], wd[0], wd[2], wd[3], yd[2], yd[3],
                stride, pad, omp_get_max_threads()};
  auto it = plans.find(key);
  if (it == plans.end()) {
    try {
      it = plans.emplace(key, make_plan(pass, xd, wd, yd, stride, pad)).first;
    } catch (const dnnl::error& e) {
      fail("oneDNN convolution ({}x{}x{}x{}, {} filters {}x{}, stride {}, padding {}): {} (status "
           "{}); MQ_CPU_CONV=own runs mq's own kernels instead",
           xd[0], xd[1], xd[2], xd[3], wd[0], wd[2], wd[3], stride, pad, e.what(), int(e.status));
    }
  }
  Plan& plan = it->second;
  auto& eng = cpu_engine();
  // An input in the primitive's layout: the user's memory itself or a reordered copy.
  auto input = [&](Operand& op, const float* user, int slot) {
    memory um(op.user, eng, const_cast<float*>(user));
    if (!op.reorder) return um;
    memory lm(op.lib, eng, buffers.get(slot, op.lib.get_size()));
    op.reorder->execute(stream, um, lm);
    return lm;
  };
  memory ma = input(plan.a, a, 0), mb = input(plan.b, b, 1);
  memory uo(plan.out.user, eng, out);
  memory mo = plan.out.reorder ? memory(plan.out.lib, eng, buffers.get(2, plan.out.lib.get_size()))
                               : uo;
  memory scratch(plan.scratch, eng, buffers.get(3, plan.scratch.get_size()));
  plan.prim.execute(stream, {{plan.arg_a, ma}, {plan.arg_b, mb}, {plan.arg_out, mo},
                             {DNNL_ARG_SCRATCHPAD, scratch}});
  if (plan.out.reorder) plan.out.reorder->execute(stream, mo, uo);
  stream.wait();
}

bool takes(const Tensor& t, Conv2dParams p) {
  return p.groups == 1 && t.dtype() == DType::f32 && t.is_cpu();
}

memory::dims dims_of(const Tensor& t) { return {t.size(0), t.size(1), t.size(2), t.size(3)}; }

}  // namespace

bool onednn_conv_forward(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p) {
  if (!takes(x, p)) return false;
  run(ConvPass::forward, dims_of(x), dims_of(w), dims_of(y), p.stride, p.padding, x.data<float>(),
      w.data<float>(), y.data<float>());
  return true;
}

bool onednn_conv_backward_input(const Tensor& gy, const Tensor& w, Tensor& gx, Conv2dParams p) {
  if (!takes(gy, p)) return false;
  run(ConvPass::backward_input, dims_of(gx), dims_of(w), dims_of(gy), p.stride, p.padding,
      gy.data<float>(), w.data<float>(), gx.data<float>());
  return true;
}

// Images per partial weight gradient. oneDNN's own split of the batch depends on the thread
// count, so the batch is cut into fixed groups instead, each run single-threaded and handed
// to the threads as they come free, and the partials are added in group order: the gradient
// is the same at any thread count and load.
constexpr int64_t kWgradImagesPerGroup = 16;

bool onednn_conv_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Conv2dParams p) {
  if (!takes(gy, p)) return false;
  if (x.size(0) == 0) {  // no images: a zero gradient
    std::fill(gw.data<float>(), gw.data<float>() + gw.numel(), 0.f);
    return true;
  }
  const int64_t n = x.size(0), groups = (n + kWgradImagesPerGroup - 1) / kWgradImagesPerGroup;
  const int64_t x_image = x.numel() / n, gy_image = gy.numel() / n;
  const int64_t wsize = gw.numel();
  thread_local std::vector<float> partial;
  if (partial.size() < size_t(groups * wsize)) partial.resize(size_t(groups * wsize));
  float* parts = partial.data();
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic) if (groups > 1)
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t n0 = g * kWgradImagesPerGroup, count = std::min(kWgradImagesPerGroup, n - n0);
    // oneDNN plans its split (and the barriers between its threads) for omp_get_max_threads():
    // one thread here, in this task only.
    omp_set_num_threads(1);
    try {
      run(ConvPass::backward_weight, {count, x.size(1), x.size(2), x.size(3)}, dims_of(gw),
          {count, gy.size(1), gy.size(2), gy.size(3)}, p.stride, p.padding,
          x.data<float>() + n0 * x_image, gy.data<float>() + n0 * gy_image, parts + g * wsize);
    } catch (...) {
#pragma omp critical(mq_onednn_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  float* out = gw.data<float>();
  std::copy(parts, parts + wsize, out);
  for (int64_t g = 1; g < groups; ++g) {
    const float* part = parts + g * wsize;
#pragma omp simd
    for (int64_t i = 0; i < wsize; ++i) out[i] += part[i];
  }
  return true;
}

#else

bool onednn_avx512() { return false; }
bool onednn_conv_forward(const Tensor&, const Tensor&, Tensor&, Conv2dParams) { return false; }
bool onednn_conv_backward_input(const Tensor&, const Tensor&, Tensor&, Conv2dParams) {
  return false;
}
bool onednn_conv_backward_weight(const Tensor&, const Tensor&, Tensor&, Conv2dParams) {
  return false;
}

#endif

}  // namespace mq::cpu
