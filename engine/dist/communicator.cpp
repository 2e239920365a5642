#include "engine/dist/communicator.h"

#include <cstdlib>

namespace mq {
namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "single process"; }
  void allreduce_sum(std::vector<Tensor>& tensors) override {
    for (const Tensor& t : tensors) MQ_CHECK(t.defined(), "allreduce_sum: an undefined tensor");
  }
  std::vector<std::string> allgather(const std::string& bytes) override { return {bytes}; }
  void broadcast(std::string&, int root) override {
    MQ_CHECK(root == 0, "broadcast: root {} of a single process", root);
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

}  // namespace

Communicator& single_process() {
  static SingleProcess one;
  return one;
}

std::vector<PackedTensors> pack_tensors(const std::vector<Tensor>& tensors) {
  std::vector<PackedTensors> packs;
  std::vector<int64_t> totals;
  for (const Tensor& t : tensors) {
    MQ_CHECK(t.defined(), "pack_tensors: an undefined tensor");
    size_t g = 0;
    while (g < packs.size() && !(packs[g].parts.front().dtype() == t.dtype() &&
                                 packs[g].parts.front().device() == t.device()))
      ++g;
    if (g == packs.size()) {
      packs.emplace_back();
      totals.push_back(0);
    }
    packs[g].parts.push_back(t);
    totals[g] += t.numel();
  }
  for (size_t g = 0; g < packs.size(); ++g) {
    const Tensor& first = packs[g].parts.front();
    packs[g].flat = Tensor::empty({totals[g]}, first.dtype(), first.device());
    int64_t at = 0;
    for (const Tensor& t : packs[g].parts) {
      flat_view(packs[g].flat, at, t.shape()).copy_(t);
      at += t.numel();
    }
  }
  return packs;
}

void unpack_tensors(const std::vector<PackedTensors>& packs) {
  for (const PackedTensors& p : packs) {
    int64_t at = 0;
    for (const Tensor& t : p.parts) {
      Tensor dst = t;
      dst.copy_(flat_view(p.flat, at, t.shape()));
      at += t.numel();
    }
  }
}

}  // namespace mq
