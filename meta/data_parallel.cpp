#include "meta/data_parallel.h"

#include <algorithm>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace mq {

std::pair<int64_t, int64_t> part_bounds(int64_t n, int parts, int part) {
  MQ_CHECK(parts >= 1 && part >= 0 && part < parts && n >= 0, "part_bounds: part {} of {} of {}",
           part, parts, n);
  // n * part fits: n is a batch size (<= 65536) and parts <= 2^20.
  return {n * part / parts, n * (part + 1) / parts};
}

std::vector<std::pair<int64_t, int64_t>> rank_slices(int64_t n, const DataParallel& p) {
  const int S = p.slices();
  const int64_t start = part_bounds(n, p.ranks(), p.rank()).first;
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int j = 0; j < p.accumulate; ++j) {
    auto [b, e] = part_bounds(n, S, p.rank() * p.accumulate + j);
    out.emplace_back(b - start, e - start);
  }
  return out;
}

void check_slices_fill(int64_t batch, int64_t dataset_size, const DataParallel& p) {
  const int S = p.slices();
  if (S == 1) return;
  const int64_t last = dataset_size % batch;
  const bool partial = dataset_size < batch || last > 0;
  const int64_t smallest = dataset_size < batch ? dataset_size : last > 0 ? last : batch;
  MQ_CHECK(smallest >= S,
           "--accumulate {} x {} rank(s) cuts every batch into {} slices, but {} of {} images "
           "leaves a slice empty; use a larger --batch-size, fewer slices, or a --train-subset "
           "whose last batch holds at least {} images",
           p.accumulate, p.ranks(), S, partial ? "the last batch" : "a batch", smallest, S);
}

BatchNormSync::BatchNormSync(Module& model) {
  for (auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) layers_.push_back(bn);
}

void BatchNormSync::defer(bool on) {
  for (BatchNorm2d* bn : layers_) {
    bn->defer_stats = on;
    bn->stats_sum = {};
  }
}

std::vector<Tensor> BatchNormSync::sums() const {
  std::vector<Tensor> out;
  for (BatchNorm2d* bn : layers_) {
    if (bn->stats_sum.batches == 0) continue;  // not used this step (on every rank alike)
    out.push_back(bn->stats_sum.mean);
    out.push_back(bn->stats_sum.var);
  }
  return out;
}

void BatchNormSync::apply(int slices) {
  for (BatchNorm2d* bn : layers_)
    if (bn->stats_sum.batches > 0) bn->apply_stats(slices);
}

void gather_rows(Communicator& comm, Tensor& full) {
  const int64_t n = full.size(0);
  const auto [a, b] = part_bounds(n, comm.size(), comm.rank());
  const Tensor mine = narrow_rows(full, a, b).to(Device::cpu());
  const size_t bytes = size_t(mine.numel()) * dtype_size(mine.dtype());
  const std::vector<std::string> all =
      comm.allgather(std::string(static_cast<const char*>(mine.raw_data()), bytes));
  for (int r = 0; r < comm.size(); ++r) {
    if (r == comm.rank()) continue;
    const auto [ra, rb] = part_bounds(n, comm.size(), r);
    Shape shape = full.shape();
    shape[0] = rb - ra;
    Tensor host = Tensor::empty(shape, full.dtype());
    MQ_CHECK(all[size_t(r)].size() == size_t(host.numel()) * dtype_size(host.dtype()),
             "data parallel: rank {} sent {} bytes for rows [{}, {})", r, all[size_t(r)].size(),
             ra, rb);
    std::memcpy(host.raw_data(), all[size_t(r)].data(), all[size_t(r)].size());
    narrow_rows(full, ra, rb).copy_(host);
  }
}

uint64_t checksum(const std::vector<Tensor>& tensors) {
  uint64_t h = 1469598103934665603ull;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    const Tensor host = t.device().is_cpu() ? t : t.to(Device::cpu());
    const auto* p = static_cast<const unsigned char*>(host.raw_data());
    const size_t bytes = static_cast<size_t>(host.numel()) * dtype_size(host.dtype());
    for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  return h;
}

void check_replicas_agree(Communicator& comm, uint64_t mine, int64_t step) {
  const std::vector<std::string> all = comm.allgather(std::to_string(mine));
  std::vector<int> differ;
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differ.push_back(static_cast<int>(r));
  MQ_CHECK(differ.empty(),
           "--check-sync: after step {} the parameters of rank(s) {} differ from rank 0's "
           "(checksums {} vs {}): the replicas diverged; this is a bug in mq or a rank that "
           "computes differently (another build, CPU or library), please report it",
           step, fmt::join(differ, ", "), all[differ.empty() ? 0 : size_t(differ[0])], all[0]);
}

}  // namespace mq
