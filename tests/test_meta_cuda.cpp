// MetaQuant steps on CUDA against the CPU. The meta-gradient kernels alone against the CPU are
// the op harness's cuda mode (tests/op_cases_meta.cpp).
#include "meta/trainers.h"
#include "models/resnet_cifar.h"
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

}  // namespace

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
