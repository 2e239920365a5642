// Loader throughput alone: images/s of DataLoader on synthetic CIFAR-sized data (3x32x32),
// batch 128, with and without augmentation, on the worker thread and inline. Nothing trains:
// this is the ceiling the data pipeline puts on a training step.
//   loader_bench [--count N] [--epochs E] [--batch B] [--seed S]
#include <chrono>
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "data/loader.h"
#include "data/registry.h"
#include "data/synthetic.h"

using namespace mq;

namespace {

struct Result {
  double images_per_s;
  double ms_per_batch;
};

Result run(const Dataset& d, LoaderOptions o, int epochs) {
  DataLoader loader(d, o);
  double checksum = 0;  // touch the data so nothing is optimized away
  size_t images = 0, batches = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int e = 0; e < epochs; ++e) {
    loader.start_epoch(e);
    for (Batch b; loader.next(b);) {
      checksum += b.images.data<float>()[0];
      images += b.size();
      ++batches;
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (checksum == 12345.678) std::puts("");
  return {images / s, 1e3 * s / static_cast<double>(batches)};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mq data loader throughput"};
  size_t count = 10000, batch = 128;
  int epochs = 3;
  uint64_t seed = 0;
  app.add_option("--count", count, "synthetic images")->check(CLI::PositiveNumber);
  app.add_option("--epochs", epochs, "epochs per configuration")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed");
  CLI11_PARSE(app, argc, argv);

  SyntheticOptions so;
  so.count = count;
  so.seed = seed;
  const Dataset d = make_synthetic(so);

  fmt::print("loader throughput: {} synthetic 3x32x32 images, batch {}, {} epochs each\n\n",
             count, batch, epochs);
  fmt::print("{:<34} {:>12} {:>12}\n", "configuration", "images/s", "ms/batch");
  fmt::print("{:-<34} {:->12} {:->12}\n", "", "", "");
  struct Config {
    const char* name;
    bool augment, shuffle, background;
  };
  const Config configs[] = {
      {"normalize only, inline", false, false, false},
      {"shuffle + normalize, inline", false, true, false},
      {"shuffle + crop/flip + norm, inline", true, true, false},
      {"shuffle + crop/flip + norm, thread", true, true, true},
  };
  for (const auto& c : configs) {
    LoaderOptions o;
    o.batch = batch;
    o.seed = seed;
    o.augment = c.augment;
    o.shuffle = c.shuffle;
    o.background = c.background;
    o.normalization = Normalization::cifar();
    run(d, o, 1);  // warm-up (page faults, allocator)
    const Result r = run(d, o, epochs);
    fmt::print("{:<34} {:>12.0f} {:>12.3f}\n", c.name, r.images_per_s, r.ms_per_batch);
  }
  return 0;
}
