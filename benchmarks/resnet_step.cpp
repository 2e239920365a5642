// Whole-step benchmark: a zoo model's (ResNet20 by default) training step (SGD, mean cross-entropy)
// and eval forward, at a given batch and thread count, on CPU or CUDA. Prints a table or one
// JSON line (--json) with ms/step, images/s and peak memory; run_resnet_step.sh puts it beside
// PyTorch's number for the same step.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/cuda/cuda_api.h"
#include "engine/ops.h"
#include "engine/optim/optimizer.h"
#include "engine/parallel.h"
#include "engine/thread_governor.h"
#include "meta/trainers.h"
#include "models/zoo.h"

using namespace mq;

namespace {
double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return sum / double(v.size());
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mq whole-step benchmark: ResNet20 full-precision training and eval"};
  int batch = 128, threads = 2, steps = 10, warmup = 3, depth = 20;
  std::string device_name = "cpu";
  bool json = false, tf32 = false;
  std::string mode = "fp";
  app.add_option("--batch", batch, "images per step")->check(CLI::Range(1, 4096));
  app.add_option("--threads", threads, "CPU threads")->check(CLI::Range(1, 256));
  app.add_option("--steps", steps, "timed steps")->check(CLI::Range(1, 100000));
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::Range(0, 1000));
  app.add_option("--depth", depth, "ResNet depth (20, 32, 44, 56, 110, 164)");
  std::string model_name;
  app.add_option("--model", model_name, "any model of the zoo (models/zoo.h; default resnet<depth>)");
  app.add_option("--device", device_name, "cpu, cuda, cuda:N or auto");
  app.add_flag("--json", json, "print one JSON line");
  app.add_option("--mode", mode,
                 "fp (full precision), ste (dorefa 1 bit, STE) or a MetaQuant meta net: "
                 "MultiFC|FC-Grad|LSTMFC (dorefa 1 bit, hidden 100)")
      ->capture_default_str();
  app.add_flag("--tf32", tf32, "allow TF32 tensor-core math on CUDA (off by default)");
  bool adapt = false;
  app.add_flag("--adapt-threads", adapt,
               "as mqtrain does by default: each step's thread count (up to --threads) chosen by "
               "the thread governor from the measured step times (engine/thread_governor.h)");
  CLI11_PARSE(app, argc, argv);

  try {
    double rss_idle = peak_rss_mb();
    set_num_threads(threads);
    Device device = Device::parse(device_name);
    if (device.is_cuda()) cuda::set_allow_tf32(tf32);
    MQ_CHECK(mode == "fp" || mode == "ste" || mode == "MultiFC" || mode == "FC-Grad" ||
                 mode == "LSTMFC",
             "--mode '{}': expected fp, ste, MultiFC, FC-Grad or LSTMFC", mode);
    QuantizedLayerFactory qfactory({Quantizer::dorefa, 1});
    bool quantized = mode != "fp";
    if (model_name.empty()) model_name = "resnet" + std::to_string(depth);
    const std::unique_ptr<Model> built = make_model(
        model_name, {.layers = quantized ? static_cast<const LayerFactory*>(&qfactory)
                                         : &default_layer_factory()}, /*seed=*/0);
    Model& model = *built;
    model.to(device);
    SGD opt(model.parameters(), 1e-3);
    std::unique_ptr<MetaNet> meta;
    std::unique_ptr<QuantTrainer> trainer;
    if (mode == "ste") {
      trainer = std::make_unique<SteTrainer>(model, "SGD", 1e-3);
    } else if (quantized) {
      meta = std::make_unique<MetaNet>(MetaNetConfig{parse_meta_kind(mode), 100, 3, MetaAct::none},
                                       0);
      meta->to(device);
      trainer = std::make_unique<MetaQuantTrainer>(model, *meta, MetaQuantOptions{});
    }
    std::mt19937 rng(0);
    std::normal_distribution<float> nd;
    std::vector<float> xs(size_t(batch) * 3 * 32 * 32);
    for (auto& v : xs) v = nd(rng);
    std::vector<int64_t> ys(batch);
    for (auto& v : ys) v = rng() % 10;
    Tensor x = Tensor::from_vector(xs, {batch, 3, 32, 32}, device);
    Tensor y = Tensor::from_vector(ys, {batch}, device);
    auto sync = [&] {
      if (device.is_cuda()) cuda::synchronize(device.index);
    };
    auto now = [] { return std::chrono::steady_clock::now(); };
    auto ms_since = [&](auto t0) {
      return std::chrono::duration<double, std::milli>(now() - t0).count();
    };

    // ---- training ----
    model.train();
    std::unique_ptr<ThreadGovernor> governor;
    if (adapt) governor = std::make_unique<ThreadGovernor>(threads);
    auto step_on_threads = [&] {
      if (trainer) {
        trainer->step(x, y);
        return;
      }
      opt.zero_grad();
      Tensor loss = cross_entropy(model.forward(x), y);
      loss.backward();
      opt.step();
    };
    auto train_step = [&] {
      if (governor) governor->step_begin();
      step_on_threads();
      if (governor) governor->step_end(batch);
    };
    for (int i = 0; i < warmup; ++i) train_step();
    sync();
    uint64_t mallocs_after_warmup = 0;
    if (device.is_cuda()) {
      mallocs_after_warmup = cuda::memory_stats(device.index).cuda_malloc_calls;
    }
    reset_cpu_peak_memory();
    std::vector<double> train_ms;
    for (int i = 0; i < steps; ++i) {
      auto t0 = now();
      train_step();
      sync();
      train_ms.push_back(ms_since(t0));
    }
    uint64_t mallocs_in_steps = 0;
    double device_peak_mb = 0;
    if (device.is_cuda()) {
      auto st = cuda::memory_stats(device.index);
      mallocs_in_steps = st.cuda_malloc_calls - mallocs_after_warmup;
      device_peak_mb = st.peak_allocated / 1048576.0;
    }
    double tensor_peak_mb = cpu_memory_stats().peak / 1048576.0;

    // ---- eval ----
    model.eval();
    std::vector<double> eval_ms;
    {
      NoGradGuard ng;
      for (int i = 0; i < warmup; ++i) model.forward(x);
      sync();
      for (int i = 0; i < steps; ++i) {
        auto t0 = now();
        model.forward(x);
        sync();
        eval_ms.push_back(ms_since(t0));
      }
    }
    // Means over all timed steps, as PyTorch's script measures (wall time / steps): the median
    // would hide slow steps (the thread governor's probes among them). Medians for reference.
    const double t_ms = mean(train_ms), e_ms = mean(eval_ms);
    double rss = peak_rss_mb();
    nlohmann::json out = {
        {"impl", "mq"},
        {"mode", mode},
        {"device", device.str()},
        {"model", model_name},
        {"batch", batch},
        {"threads", threads},
        {"train_ms", t_ms},
        {"train_images_per_s", batch / t_ms * 1e3},
        {"train_ms_median", median(train_ms)},
        {"adapt_threads", adapt},
        {"threads_at_end", governor ? governor->threads() : threads},
        {"thread_changes", governor ? governor->changes() : 0},
        {"eval_ms", e_ms},
        {"eval_images_per_s", batch / e_ms * 1e3},
        {"eval_ms_median", median(eval_ms)},
        {"peak_rss_mb", rss},
        {"peak_rss_over_idle_mb", rss - rss_idle},
        {"cpu_tensor_peak_mb", tensor_peak_mb},
    };
    if (device.is_cuda()) {
      out["device_peak_mb"] = device_peak_mb;
      out["cuda_malloc_calls_in_timed_steps"] = mallocs_in_steps;
    }
    if (json) {
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("mq %s (%s) on %s, batch %d, %d threads\n", model_name.c_str(), mode.c_str(),
                  device.str().c_str(), batch, threads);
      std::printf("  train: %8.1f ms/step  %8.1f images/s (mean of %d steps; median %.1f ms)\n",
                  t_ms, batch / t_ms * 1e3, steps, median(train_ms));
      if (governor)
        std::printf("  thread governor: %d thread(s) at the end, %d change(s)\n",
                    governor->threads(), governor->changes());
      std::printf("  eval : %8.1f ms/step  %8.1f images/s\n", e_ms, batch / e_ms * 1e3);
      std::printf("  peak RSS %.1f MB (%.1f MB over idle), tensor peak during training %.1f MB\n",
                  rss, rss - rss_idle, tensor_peak_mb);
      if (device.is_cuda())
        std::printf("  device peak %.1f MB, cudaMalloc calls during timed steps: %llu\n",
                    device_peak_mb, static_cast<unsigned long long>(mallocs_in_steps));
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "resnet_step: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
