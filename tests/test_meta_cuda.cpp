// CUDA meta-gradient kernels and a MetaQuant step against the CPU.
#include "meta/meta_op.h"
#include "meta/trainers.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;

namespace {

MetaNetConfig cfg(MetaKind k, int64_t h, int num_fc = 3) {
  MetaNetConfig c;
  c.kind = k;
  c.hidden = h;
  c.num_fc = num_fc;
  return c;
}

struct Run {
  Tensor G;
  std::vector<Tensor> grads;
  LstmState state;
};

Run run_meta(const MetaNet& net, const Tensor& g, const Tensor& x, const Tensor& R,
             const LstmState& st) {
  Run r;
  for (Tensor p : net.parameters()) p.zero_grad();
  Tensor G = meta_gradient(net, g, x, st, &r.state);
  sum(mul(G, R)).backward();
  r.G = G.detach().to(Device::cpu());
  for (const Tensor& p : net.parameters()) r.grads.push_back(p.grad().to(Device::cpu()));
  if (r.state.h.defined()) r.state = {r.state.h.to(Device::cpu()), r.state.c.to(Device::cpu())};
  return r;
}

void compare_devices(MetaNetConfig c, int64_t n, bool with_state) {
  const Device gpu = Device::cuda(0);
  MetaNet cpu_net(c, 3), gpu_net(c, 3);
  gpu_net.to(gpu);
  Tensor g = randn({n}, 1, DType::f32, 0.01), x = uniform({n}, 2, -1, 1, DType::f32);
  Tensor R = randn({n}, 3, DType::f32);
  LstmState st;
  if (with_state) st = {randn({n, c.hidden}, 4, DType::f32, 0.5), randn({n, c.hidden}, 5, DType::f32, 0.5)};
  LstmState st_gpu = with_state ? LstmState{st.h.to(gpu), st.c.to(gpu)} : LstmState{};
  Run a = run_meta(cpu_net, g, x, R, st);
  Run b = run_meta(gpu_net, g.to(gpu), x.to(gpu), R.to(gpu), st_gpu);
  require_close(b.G, a.G, 1e-7, 1e-4, "G");
  auto names = cpu_net.named_parameters();
  for (size_t k = 0; k < a.grads.size(); ++k)
    require_close(b.grads[k], a.grads[k], 1e-5, 1e-3, names[k].first);
  if (a.state.h.defined()) {
    require_close(b.state.h, a.state.h, 1e-6, 1e-4, "h'");
    require_close(b.state.c, a.state.c, 1e-6, 1e-4, "c'");
  }
}

}  // namespace

TEST_CASE("meta gradient CUDA vs CPU: collapsed FC-Grad and MultiFC", "[cuda][meta]") {
  if (!mq::test::cuda_available_or_skip()) return;
  compare_devices(cfg(MetaKind::fc_grad, 100), 100000, false);
  compare_devices(cfg(MetaKind::multi_fc, 100, 3), 100000, false);
  compare_devices(cfg(MetaKind::multi_fc, 16, 4), 7, false);  // tiny n
}

TEST_CASE("meta gradient CUDA vs CPU: LSTMFC zero and carried state", "[cuda][meta]") {
  if (!mq::test::cuda_available_or_skip()) return;
  compare_devices(cfg(MetaKind::lstm_fc, 100), 50000, false);
  compare_devices(cfg(MetaKind::lstm_fc, 100), 50000, true);
  compare_devices(cfg(MetaKind::lstm_fc, 37), 3001, true);  // odd hidden size and rows
}

TEST_CASE("MetaQuant steps CUDA vs CPU", "[cuda][meta]") {
  if (!mq::test::cuda_available_or_skip()) return;
  for (MetaKind kind : {MetaKind::multi_fc, MetaKind::lstm_fc}) {
    INFO(meta_kind_str(kind));
    QuantizedLayerFactory f({Quantizer::dorefa, 1});
    ResNetCifar cpu_model(20, 10, 3, 7, f), gpu_model(20, 10, 3, 7, f);
    gpu_model.to(Device::cuda(0));
    MetaNet cpu_meta(cfg(kind, 100), 9), gpu_meta(cfg(kind, 100), 9);
    gpu_meta.to(Device::cuda(0));
    MetaQuantOptions o;
    o.optimizer = "Adam";
    MetaQuantTrainer a(cpu_model, cpu_meta, o), b(gpu_model, gpu_meta, o);
    for (int step = 0; step < 3; ++step) {
      Tensor x = randn({8, 3, 32, 32}, 100 + step, DType::f32);
      std::vector<int64_t> labels(8);
      for (int i = 0; i < 8; ++i) labels[i] = (i * 3 + step) % 10;
      Tensor y = Tensor::from_vector(labels, {8});
      double la = a.step(x, y).loss;
      double lb = b.step(x.to(Device::cuda(0)), y.to(Device::cuda(0))).loss;
      CHECK(lb == Approx(la).epsilon(1e-4));
    }
    auto sa = cpu_model.state_dict(), sb = gpu_model.state_dict();
    for (size_t k = 0; k < sa.size(); ++k) {
      if (sa[k].second.dtype() != DType::f32) continue;
      INFO(sa[k].first);
      // Adam-refined: a near-zero gradient may flip sign between devices
      // (docs/metaquant.md §11.2).
      CloseReport rep = compare(sb[k].second.to(Device::cpu()), sa[k].second, 1e-2, 0);
      CHECK(rep.ok);
    }
    auto ma = cpu_meta.named_parameters(), mb = gpu_meta.named_parameters();
    for (size_t k = 0; k < ma.size(); ++k)
      require_close(mb[k].second.to(Device::cpu()), ma[k].second, 1e-4, 1e-3, ma[k].first);
  }
}
