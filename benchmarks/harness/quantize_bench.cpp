// The quantizer benchmark (see quantize_bench.h).
#include "benchmarks/harness/quantize_bench.h"

#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/dispatch.h"
#include "kernels/base/error.h"
#include "kernels/cpu_threads.h"
#include "kernels/quantize/quantize.h"
#include "kernels/quantize/quantizer_table.h"

namespace mq::bench {
namespace {
using kernels::Quantizer;

// The call to time on the benchmark's device. As in on_device (engine/dispatch.h), the CUDA
// branch is a generic lambda that a build without CUDA never instantiates.
template <class Cpu, class Cuda>
std::function<void()> on_bench_device(bool cuda, Cpu cpu, Cuda gpu) {
  if constexpr (kWithCuda) {
    if (cuda) return [gpu] { gpu(nullptr); };
  }
  return cpu;
}

struct HostBuffer {  // 64-byte aligned floats
  explicit HostBuffer(int64_t n)
      : p(static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64))) {
    MQ_CHECK(p != nullptr, "mqbench: out of memory for {} floats", n);
  }
  ~HostBuffer() { std::free(p); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  float* p;
};

struct DeviceBuffer {
  explicit DeviceBuffer(int64_t n) : p(static_cast<float*>(cuda_bench_alloc(n * sizeof(float)))) {}
  ~DeviceBuffer() { cuda_bench_free(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  float* p;
};

// The copy the CPU kernels are compared with: memcpy split over the threads as the kernels split.
void parallel_copy(float* dst, const float* src, int64_t n) {
  kernels::parallel_segments(n, kernels::cpu_threads_for(n), [&](int64_t lo, int64_t hi, int) {
    std::memcpy(dst + lo, src + lo, (hi - lo) * sizeof(float));
  });
}

// Bytes an op reads and writes (f32), counting each pass over memory (the table's traffic).
double bytes_moved(Quantizer q, QuantOp op, int64_t n) {
  const kernels::QuantizerTraffic t = kernels::quantizer_info(q).traffic;
  const int floats = op == QuantOp::forward    ? t.forward
                     : op == QuantOp::backward ? t.backward
                                               : t.calibration;
  return 4.0 * floats * static_cast<double>(n);
}
}  // namespace

const char* quant_op_name(QuantOp op) {
  switch (op) {
    case QuantOp::forward: return "forward";
    case QuantOp::backward: return "backward";
    case QuantOp::calibration: return "calibration";
  }
  return "?";
}

std::vector<BenchSize> resnet20_sizes() {
  // conv weights [K, C, 3, 3] (and 1x1 downsample convs), fc [10, 64]; 22 layers, 9 sizes.
  return {{16 * 3 * 9, 16, "conv1 (x1)"},           {16 * 16 * 9, 16, "layer1 convs (x6)"},
          {32 * 16 * 9, 32, "layer2.0.conv1 (x1)"}, {32 * 32 * 9, 32, "layer2 convs (x5)"},
          {32 * 16, 32, "layer2.0.downsample (x1)"}, {64 * 32 * 9, 64, "layer3.0.conv1 (x1)"},
          {64 * 64 * 9, 64, "layer3 convs (x5)"},   {64 * 32, 64, "layer3.0.downsample (x1)"},
          {10 * 64, 10, "fc (x1)"}};
}

std::vector<BenchSize> default_sizes() {
  auto s = resnet20_sizes();
  s.push_back({1 << 20, 64, "1M"});
  s.push_back({1 << 24, 64, "16M"});
  return s;
}

std::vector<int> parse_int_list(const std::string& text, int lo, int hi, const char* what) {
  std::vector<int> out;
  size_t pos = 0;
  auto bad = [&](const std::string& item) -> std::vector<int> {
    fail("{}: '{}' is not a number or range in {}..{} (e.g. 1,2,4-8)", what, item, lo, hi);
  };
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    if (item.empty()) return bad(item);
    const size_t dash = item.find('-');
    char* end = nullptr;
    const long a = std::strtol(item.c_str(), &end, 10);
    long b = a;
    if (dash == std::string::npos) {
      if (*end != '\0') return bad(item);
    } else {
      if (end != item.c_str() + dash) return bad(item);
      const char* rest = item.c_str() + dash + 1;
      b = std::strtol(rest, &end, 10);
      if (end == rest || *end != '\0') return bad(item);
    }
    if (a < lo || b > hi || a > b) return bad(item);
    for (long v = a; v <= b; ++v) out.push_back(static_cast<int>(v));
    pos = comma + 1;
  }
  return out;
}

std::vector<BenchSize> parse_sizes(const std::string& text) {
  std::vector<BenchSize> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    double mult = 1;
    if (end && (*end == 'K' || *end == 'k')) mult = 1 << 10, ++end;
    else if (end && (*end == 'M' || *end == 'm')) mult = 1 << 20, ++end;
    MQ_CHECK(!item.empty() && end && *end == '\0' && v * mult >= 1 && v * mult <= 1e10,
             "--sizes: '{}' is not an element count (e.g. 432,1M,16M)", item);
    BenchSize s;
    s.n = static_cast<int64_t>(v * mult);
    s.channels = 64;
    while (s.n % s.channels) s.channels /= 2;
    s.label = item;
    out.push_back(s);
    pos = comma + 1;
  }
  return out;
}

QuantBenchReport run_quantize_bench(const QuantBenchConfig& cfg) {
  // cfg.threads for this run only: the caller's OpenMP thread count comes back on return
  struct ThreadCount {
    int saved = omp_get_max_threads();
    ~ThreadCount() { omp_set_num_threads(saved); }
  } restore;
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  QuantBenchReport report;
  report.device = cfg.cuda ? "cuda: " + cuda_device_name()
                           : fmt::format("cpu ({} threads)", omp_get_max_threads());
  MQ_CHECK(std::isfinite(cfg.weight_std) && cfg.weight_std > 0,
           "--weight-std must be a positive finite number, got {}", cfg.weight_std);
  report.weight_std = cfg.weight_std;
  void* stream = cfg.cuda ? cuda_bench_stream() : nullptr;
  for (const BenchSize& size : cfg.sizes) {
    const int64_t n = size.n;
    std::vector<float> init(n);
    std::mt19937 rng(1234);
    std::normal_distribution<float> dist(0.f, static_cast<float>(cfg.weight_std));
    for (auto& x : init) x = dist(rng);
    // Buffers: w, g_hat, and three outputs (W~, W^ / g_W / c, and the scale).
    std::unique_ptr<HostBuffer> hw, hg, ha, hb, hs;
    std::unique_ptr<DeviceBuffer> dw, dg, da, db, ds, dws;
    float *w, *g, *a, *b, *s;
    [[maybe_unused]] void* ws = nullptr;
    if (cfg.cuda) {
      dw = std::make_unique<DeviceBuffer>(n), dg = std::make_unique<DeviceBuffer>(n);
      da = std::make_unique<DeviceBuffer>(n), db = std::make_unique<DeviceBuffer>(n);
      ds = std::make_unique<DeviceBuffer>(size.channels);
      dws = std::make_unique<DeviceBuffer>(2 * size.channels + 8);
      w = dw->p, g = dg->p, a = da->p, b = db->p, s = ds->p, ws = dws->p;
      cuda_bench_upload(w, init.data(), n * sizeof(float));
      cuda_bench_upload(g, init.data(), n * sizeof(float));
    } else {
      hw = std::make_unique<HostBuffer>(n), hg = std::make_unique<HostBuffer>(n);
      ha = std::make_unique<HostBuffer>(n), hb = std::make_unique<HostBuffer>(n);
      hs = std::make_unique<HostBuffer>(size.channels);
      w = hw->p, g = hg->p, a = ha->p, b = hb->p, s = hs->p;
      std::memcpy(w, init.data(), n * sizeof(float));
      std::memcpy(g, init.data(), n * sizeof(float));
      std::memset(a, 0, n * sizeof(float)), std::memset(b, 0, n * sizeof(float));
    }
    auto timed = [&](const std::function<void()>& f) {
      return cfg.cuda ? time_cuda(f, cfg.warmup, cfg.repeat, stream)
                      : time_cpu(f, cfg.warmup, cfg.repeat);
    };
    // The copy is timed again right before every row and the row is compared with that one:
    // a machine whose speed drifts during the run (shared or throttled cores) would otherwise
    // skew the fractions of the rows timed long after it.
    auto copy_gbps = [&] {
      const Timing copy = timed([&] {
        if (cfg.cuda) cuda_bench_copy(a, w, n * sizeof(float), stream);
        else parallel_copy(a, w, n);
      });
      return 8.0 * n / copy.median_s * 1e-9;
    };

    for (Quantizer q : cfg.quantizers) {
      const bool bits_matter = kernels::quantizer_info(q).kernel_bits == kernels::kBitsAsGiven;
      std::vector<int> bits = bits_matter ? cfg.bits : std::vector<int>{kernels::kernel_bits_for(q, 0)};
      const int64_t channels = kernels::quantizer_info(q).per_channel ? size.channels : 1;
      for (int k : bits) {
        for (QuantOp op : cfg.ops) {
          if (op != QuantOp::forward && bits_matter && k != bits.front()) continue;
          float* wt = kernels::quantizer_info(q).w_tilde_is_w ? nullptr : a;
          std::function<void()> f;
          switch (op) {
            case QuantOp::forward:
              f = on_bench_device(
                  cfg.cuda,
                  [&, q, k, wt, channels] {
                    kernels::quantize_forward_cpu<float>(q, k, w, n, channels, wt, b, s);
                  },
                  [&, q, k, wt, channels](auto) {
                    kernels::quantize_forward_cuda(q, k, w, n, channels, wt, b, s, ws, stream);
                  });
              break;
            case QuantOp::backward:
              f = on_bench_device(
                  cfg.cuda,
                  [&, q, channels] {
                    kernels::quantize_backward_cpu<float>(q, w, g, s, n, channels, b);
                  },
                  [&, q, channels](auto) {
                    kernels::quantize_backward_cuda(q, w, g, s, n, channels, b, stream);
                  });
              break;
            case QuantOp::calibration:
              f = on_bench_device(
                  cfg.cuda,
                  [&, q, channels] {
                    kernels::quantize_calibration_cpu<float>(q, w, n, channels, b);
                  },
                  [&, q, channels](auto) {
                    kernels::quantize_calibration_cuda(q, w, n, channels, b, ws, stream);
                  });
              break;
          }
          // the backward needs a scale: run one forward first
          if (op != QuantOp::forward) {
            const int fb = k;
            on_bench_device(
                cfg.cuda,
                [&] { kernels::quantize_forward_cpu<float>(q, fb, w, n, channels, wt, b, s); },
                [&](auto) {
                  kernels::quantize_forward_cuda(q, fb, w, n, channels, wt, b, s, ws, stream);
                })();
          }
          QuantBenchRow row;
          row.quantizer = kernels::quantizer_info(q).name;
          row.bits = k;
          row.op = quant_op_name(op);
          row.size = size;
          row.size.channels = channels;
          row.copy_gb_per_s = copy_gbps();
          row.time = timed(f);
          row.bytes = bytes_moved(q, op, n);
          row.elems_per_s = n / row.time.median_s;
          row.gb_per_s = row.bytes / row.time.median_s * 1e-9;
          row.copy_fraction = row.gb_per_s / row.copy_gb_per_s;
          report.rows.push_back(row);
        }
      }
    }
  }
  return report;
}

std::string format_table(const QuantBenchReport& r) {
  std::string out = fmt::format("device: {}; weights normal(0, {})\n", r.device, r.weight_std);
  out += fmt::format("{:<8} {:>4} {:<11} {:>9} {:<26} {:>11} {:>7} {:>10} {:>8} {:>8} {:>6}\n",
                     "quant", "bits", "op", "n", "size", "median_us", "spread", "Melem/s",
                     "GB/s", "copyGB/s", "frac");
  for (const auto& row : r.rows)
    out += fmt::format(
        "{:<8} {:>4} {:<11} {:>9} {:<26} {:>11.2f} {:>6.0f}% {:>10.1f} {:>8.2f} {:>8.2f} {:>5.0f}%\n",
        row.quantizer, row.bits, row.op, row.size.n, row.size.label, row.time.median_s * 1e6,
        row.time.spread() * 100, row.elems_per_s * 1e-6, row.gb_per_s, row.copy_gb_per_s,
        row.copy_fraction * 100);
  return out;
}

std::string to_json(const QuantBenchReport& r) {
  nlohmann::json j;
  j["device"] = r.device;
  j["weight_std"] = r.weight_std;
  j["rows"] = nlohmann::json::array();
  for (const auto& row : r.rows)
    j["rows"].push_back({{"quantizer", row.quantizer}, {"bits", row.bits}, {"op", row.op},
                         {"n", row.size.n}, {"channels", row.size.channels},
                         {"label", row.size.label}, {"median_s", row.time.median_s},
                         {"min_s", row.time.min_s}, {"max_s", row.time.max_s},
                         {"bytes", row.bytes}, {"elements_per_s", row.elems_per_s},
                         {"gb_per_s", row.gb_per_s}, {"copy_gb_per_s", row.copy_gb_per_s},
                         {"copy_fraction", row.copy_fraction}});
  return j.dump(2);
}

}  // namespace mq::bench
