#include "meta/meta_op.h"

#include <algorithm>
#include <tuple>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "kernels/meta/meta.h"

namespace mq {
namespace {

// Rows per chunk of the LSTM's recurrent GEMM: keeps the [rows, 4h] buffer near 16 MB (f32).
int64_t lstm_chunk_rows(int64_t hidden) { return std::max<int64_t>(1024, (4 << 20) / (4 * hidden)); }

void gemm_acc(const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& c, double beta) {
  on_device(a, "meta_gradient", [&](auto) { cpu::gemm(a, ta, b, tb, c, beta); },
            [&](auto) { cuda_ops::gemm(a, ta, b, tb, c, beta); });
}

Tensor workspace(size_t bytes, Device device) {
  return Tensor::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, DType::u8, device);
}

void check_rows(const Tensor& g_hat, const Tensor& w_tilde, const MetaNet& net) {
  const char* op = "meta_gradient";
  check_defined(g_hat, op, "g_hat");
  check_defined(w_tilde, op, "w_tilde");
  check_floating(g_hat, op, "g_hat");
  check_same_device(g_hat, w_tilde, op);
  check_same_dtype(g_hat, w_tilde, op);
  MQ_CHECK(g_hat.numel() == w_tilde.numel() && g_hat.numel() >= 1,
           "meta_gradient: g_hat {} and W~ {} must have the same (non-zero) size",
           g_hat.describe(), w_tilde.describe());
  if (g_hat.is_cuda()) check_cuda_f32(g_hat, op);
  for (const Tensor& p : net.parameters()) {
    MQ_CHECK(p.device() == g_hat.device() && p.dtype() == g_hat.dtype(),
             "meta_gradient: the meta network is {} but the rows are {}: move it with .to()",
             p.describe(), g_hat.describe());
  }
}

Tensor linear_meta(const MetaNet& net, const Tensor& g_hat, const Tensor& w_tilde) {
  Tensor s = collapse_linear(net);
  const bool fc_grad = net.config().kind == MetaKind::fc_grad;
  Tensor u = fc_grad ? g_hat.detach() : w_tilde.detach();
  Tensor v = fc_grad ? Tensor() : g_hat.detach();
  const int64_t n = u.numel();
  Tensor G = Tensor::empty(g_hat.shape(), g_hat.dtype(), g_hat.device());
  on_device(
      G, "meta_gradient",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::meta_scaled_forward_cpu<T>(s.data<T>(), u.data<T>(), v.data<T>(), n,
                                            G.data<T>());
      },
      [&](auto stream) {
        kernels::meta_scaled_forward_cuda(s.data<float>(), u.data<float>(), v.data<float>(), n,
                                          G.data<float>(), stream);
      });
  return record(G, "meta_gradient_linear", {s}, [u, v, n](const Tensor& dG) {
    Tensor ds = Tensor::zeros({1, 1}, dG.dtype(), dG.device());
    on_device(
        dG, "meta_gradient_backward",
        [&](auto tag) {
          using T = decltype(tag);
          kernels::meta_scaled_backward_cpu<T>(dG.data<T>(), u.data<T>(), v.data<T>(), n,
                                               ds.data<T>());
        },
        [&](auto stream) {
          Tensor ws = workspace(kernels::meta_scaled_workspace_bytes(n), dG.device());
          kernels::meta_scaled_backward_cuda(dG.data<float>(), u.data<float>(), v.data<float>(),
                                             n, ds.data<float>(), ws.data<uint8_t>(), stream);
        });
    return std::vector<Tensor>{ds};
  });
}

template <class T>
kernels::LstmParams<T> lstm_params(const MetaNet& net) {
  return {net.w_ih.data<T>(), net.b_ih.data<T>(), net.b_hh.data<T>(), net.fc_w.data<T>(),
          net.fc_b.data<T>(), net.config().hidden};
}

// The recurrent pre-activation of rows [r0, r1): h_prev[r0:r1] @ W_hh^T.
Tensor recurrent(const LstmState& st, const Tensor& w_hh, int64_t r0, int64_t r1) {
  const int64_t h = w_hh.size(1);
  Tensor hp = flat_view(st.h, r0 * h, {r1 - r0, h});
  Tensor r = Tensor::empty({r1 - r0, 4 * h}, hp.dtype(), hp.device());
  gemm_acc(hp, false, w_hh, true, r, 0.0);
  return r;
}

// G [n] and the new state (h', c') [n, h] of an LSTMFC forward, uninitialized.
std::tuple<Tensor, Tensor, Tensor> lstm_outputs(const Tensor& g_hat, int64_t h) {
  const int64_t n = g_hat.numel();
  return {Tensor::empty(g_hat.shape(), g_hat.dtype(), g_hat.device()),
          Tensor::empty({n, h}, g_hat.dtype(), g_hat.device()),
          Tensor::empty({n, h}, g_hat.dtype(), g_hat.device())};
}

// CUDA: the op layer runs the recurrent GEMM per chunk; the backward recomputes the gates. A
// template so that only on_device's CUDA branch instantiates it (builds without CUDA never do).
template <class Stream>
Tensor lstm_meta_cuda(const MetaNet& net, const Tensor& g_hat, const Tensor& w_tilde,
                      const LstmState& state, LstmState* state_out, Stream stream) {
  const int64_t n = g_hat.numel(), h = net.config().hidden;
  Tensor x = w_tilde.detach(), g = g_hat.detach();
  auto [G, hn, cn] = lstm_outputs(g_hat, h);
  const int64_t chunk = state.is_zero() ? n : lstm_chunk_rows(h);
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t r1 = std::min(n, r0 + chunk), rows = r1 - r0;
    Tensor r = state.is_zero() ? Tensor() : recurrent(state, net.w_hh, r0, r1);
    const Tensor cp = state.is_zero() ? Tensor() : flat_view(state.c, r0 * h, {rows, h});
    kernels::meta_lstm_forward_cuda(lstm_params<float>(net), x.data<float>() + r0,
                                    g.data<float>() + r0, r.data<float>(), cp.data<float>(), rows,
                                    hn.data<float>() + r0 * h, cn.data<float>() + r0 * h,
                                    G.data<float>() + r0, stream);
  }
  if (state_out) *state_out = LstmState{hn, cn};
  // The backward needs the previous state (the new one may replace it in the caller's hands,
  // these handles keep it alive) and the parameters' values of this forward.
  const MetaNet* netp = &net;
  LstmState prev = state;
  return record(
      G, "meta_gradient_lstm", {net.w_ih, net.w_hh, net.b_ih, net.b_hh, net.fc_w, net.fc_b},
      [netp, prev, x, g, n, h](const Tensor& dG) {
        const MetaNet& net = *netp;
        Device dev = dG.device();
        DType dt = dG.dtype();
        Tensor gw_ih = Tensor::zeros({4 * h, 1}, dt, dev), gw_hh = Tensor::zeros({4 * h, h}, dt, dev);
        Tensor gb = Tensor::zeros({4 * h}, dt, dev), gfc_w = Tensor::zeros({1, h}, dt, dev);
        Tensor gfc_b = Tensor::zeros({1}, dt, dev);
        const int64_t chunk = prev.is_zero() ? n : lstm_chunk_rows(h);
        for (int64_t r0 = 0; r0 < n; r0 += chunk) {
          const int64_t r1 = std::min(n, r0 + chunk), rows = r1 - r0;
          Tensor r = prev.is_zero() ? Tensor() : recurrent(prev, net.w_hh, r0, r1);
          const Tensor cp = prev.is_zero() ? Tensor() : flat_view(prev.c, r0 * h, {rows, h});
          Tensor da = prev.is_zero() ? Tensor() : Tensor::empty({rows, 4 * h}, dt, dev);
          Tensor ws = workspace(kernels::meta_lstm_workspace_bytes(rows, h), dev);
          kernels::meta_lstm_backward_cuda(
              lstm_params<float>(net), dG.data<float>() + r0, x.data<float>() + r0,
              g.data<float>() + r0, r.data<float>(), cp.data<float>(), rows, da.data<float>(),
              kernels::LstmGrads<float>{gw_ih.data<float>(), gb.data<float>(),
                                        gfc_w.data<float>(), gfc_b.data<float>()},
              ws.data<uint8_t>(), stream_of(dG));
          if (da.defined()) {
            Tensor hp = flat_view(prev.h, r0 * h, {rows, h});
            gemm_acc(da, true, hp, false, gw_hh, 1.0);
          }
        }
        return std::vector<Tensor>{gw_ih, gw_hh, gb, gb.clone(), gfc_w, gfc_b};
      });
}

// CPU: one fused forward over all rows that keeps K = da/dm ([n, 4h]); the backward is one GEMM
// per chunk against it (kernels/meta/lstm_cpu.cpp). The old cell state is not needed by it.
template <class T>
Tensor lstm_meta_cpu(const MetaNet& net, const Tensor& g_hat, const Tensor& w_tilde,
                     const LstmState& state, LstmState* state_out) {
  const int64_t n = g_hat.numel(), h = net.config().hidden;
  Tensor x = w_tilde.detach(), g = g_hat.detach();
  auto [G, hn, cn] = lstm_outputs(g_hat, h);
  Tensor K = Tensor::empty({n, 4 * h}, g.dtype(), g.device());
  kernels::meta_lstm_forward_fused_cpu<T>(lstm_params<T>(net), net.w_hh.data<T>(), x.data<T>(),
                                          g.data<T>(), state.h.data<T>(), state.c.data<T>(), n,
                                          hn.data<T>(), cn.data<T>(), G.data<T>(), K.data<T>());
  if (state_out) *state_out = LstmState{hn, cn};
  const MetaNet* netp = &net;
  Tensor h_prev = state.h;  // kept alive for dW_hh (the caller may drop the old state)
  return record(
      G, "meta_gradient_lstm", {net.w_ih, net.w_hh, net.b_ih, net.b_hh, net.fc_w, net.fc_b},
      // hn = hn: clang 14 cannot capture a structured binding by name (C++20, clang 16).
      [netp, h_prev, hn = hn, K, x, g, h](const Tensor& dG) {
        const DType dt = dG.dtype();
        const Device dev = dG.device();
        Tensor gw_ih = Tensor::zeros({4 * h, 1}, dt, dev), gw_hh = Tensor::zeros({4 * h, h}, dt, dev);
        Tensor gb = Tensor::zeros({4 * h}, dt, dev), gfc_w = Tensor::zeros({1, h}, dt, dev);
        Tensor gfc_b = Tensor::zeros({1}, dt, dev);
        kernels::LstmGrads<T> gr{gw_ih.data<T>(), gb.data<T>(), gfc_w.data<T>(), gfc_b.data<T>()};
        kernels::meta_lstm_backward_fused_cpu<T>(lstm_params<T>(*netp), dG.data<T>(), g.data<T>(),
                                                 x.data<T>(), h_prev.data<T>(), hn.data<T>(),
                                                 K.data<T>(), x.numel(), gr, gw_hh.data<T>());
        return std::vector<Tensor>{gw_ih, gw_hh, gb, gb.clone(), gfc_w, gfc_b};
      });
}

Tensor lstm_meta(const MetaNet& net, const Tensor& g_hat, const Tensor& w_tilde,
                 const LstmState& state, LstmState* state_out) {
  const int64_t n = g_hat.numel(), h = net.config().hidden;
  if (!state.is_zero()) {
    MQ_CHECK(state.h.numel() == n * h && state.c.numel() == n * h &&
                 state.h.device() == g_hat.device() && state.h.dtype() == g_hat.dtype(),
             "LSTMFC: state {} does not fit {} rows of hidden size {}", state.h.describe(), n, h);
  }
  return on_device(
      g_hat, "meta_gradient",
      [&](auto tag) { return lstm_meta_cpu<decltype(tag)>(net, g_hat, w_tilde, state, state_out); },
      [&](auto stream) { return lstm_meta_cuda(net, g_hat, w_tilde, state, state_out, stream); });
}

}  // namespace

Tensor collapse_linear(const MetaNet& net) {
  MQ_CHECK(net.is_linear(), "collapse_linear: the {} meta network with activation {} is not linear",
           meta_kind_str(net.config().kind), meta_act_str(net.config().act));
  std::vector<Tensor> ws = net.fc_weights();
  Tensor s = ws.back();
  for (size_t k = ws.size() - 1; k-- > 0;) s = matmul(s, ws[k]);
  return s;
}

Tensor meta_gradient(const MetaNet& net, const Tensor& g_hat, const Tensor& w_tilde,
                     const LstmState& state, LstmState* state_out) {
  check_rows(g_hat, w_tilde, net);
  if (net.config().kind == MetaKind::lstm_fc)
    return lstm_meta(net, g_hat, w_tilde, state, state_out);
  if (net.is_linear()) return linear_meta(net, g_hat, w_tilde);
  return meta_gradient_reference(net, g_hat, w_tilde);
}

SplitGradient split_gradient(const Tensor& G) {
  SplitGradient s;
  s.G = G.detach();
  s.dG = std::make_shared<Tensor>(Tensor::zeros(G.shape(), G.dtype(), G.device()));
  std::shared_ptr<Tensor> buf = s.dG;
  s.token = record(Tensor::zeros({}, G.dtype(), G.device()), "meta_gradient_split", {G},
                   [buf](const Tensor&) { return std::vector<Tensor>{*buf}; });
  return s;
}

}  // namespace mq
