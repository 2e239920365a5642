#pragma once
// The quantizer benchmark behind `mqbench`: times forward / backward / calibration of every
// requested quantizer, bitwidth and size on the CPU or CUDA, next to a copy (memcpy or
// cudaMemcpy D2D) of the same size on the same device in the same run.
#include <cstdint>
#include <string>
#include <vector>

#include "benchmarks/harness/bench_timer.h"
#include "kernels/quantize/quantize_math.h"

namespace mq::bench {

struct BenchSize {
  int64_t n = 0;
  int64_t channels = 1;  // bwn-f's output channels
  std::string label;     // "layer2.0.conv1", "1M", ...
};

enum class QuantOp { forward, backward, calibration };
const char* quant_op_name(QuantOp op);

struct QuantBenchConfig {
  bool cuda = false;
  std::vector<kernels::Quantizer> quantizers;
  std::vector<int> bits;  // dorefa's; the others run at their own width once
  std::vector<QuantOp> ops;
  std::vector<BenchSize> sizes;
  int warmup = 3;
  int repeat = 20;
  int threads = 0;  // CPU threads (0: the OpenMP default)
  // W ~ normal(0, weight_std): trained conv weights lie well inside 0.5, where the CPU dorefa
  // tanh is its short polynomial; a std of 1 or more times the full tanh.
  double weight_std = 0.1;
};

struct QuantBenchRow {
  std::string quantizer;  // "dorefa", "bwn", ...
  int bits = 0;
  std::string op;
  BenchSize size;
  Timing time;
  double bytes = 0;          // bytes the op reads and writes (its passes over memory)
  double elems_per_s = 0;
  double gb_per_s = 0;
  double copy_gb_per_s = 0;  // a copy of the same n on the same device, timed just before
  double copy_fraction = 0;  // gb_per_s / copy_gb_per_s
};

struct QuantBenchReport {
  std::string device;  // "cpu (2 threads)", "cuda: NVIDIA H100 ..."
  double weight_std = 0;
  std::vector<QuantBenchRow> rows;
};

// Every quantized weight of ResNet20 (docs/metaquant.md §2), distinct sizes with a label.
std::vector<BenchSize> resnet20_sizes();
// The default sizes: resnet20_sizes() plus 1M and 16M elements.
std::vector<BenchSize> default_sizes();
// "1,2,4-8" -> {1,2,4,5,6,7,8}, each in [lo, hi]; mq::Error on malformed input.
std::vector<int> parse_int_list(const std::string& text, int lo, int hi, const char* what);
// "432,4608,1M,16M,2K" -> sizes (channels: 64 when it divides n, else the largest power of two
// that does); mq::Error on malformed input.
std::vector<BenchSize> parse_sizes(const std::string& text);

QuantBenchReport run_quantize_bench(const QuantBenchConfig& config);
std::string format_table(const QuantBenchReport& report);
std::string to_json(const QuantBenchReport& report);

}  // namespace mq::bench
