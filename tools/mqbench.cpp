// mqbench: kernel benchmark (quantizers), CPU or CUDA; a human table and optional JSON.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "engine/device.h"
#include "kernels/base/error.h"
#include "benchmarks/harness/quantize_bench.h"
#include "kernels/quantize/quantizer_table.h"

int main(int argc, char** argv) {
  CLI::App app{"mqbench: time the weight-quantizer kernels (GB/s and fraction of copy bandwidth)"};
  using mq::kernels::quantizer_info;
  const mq::kernels::QuantizerInfo& dorefa = quantizer_info(mq::kernels::Quantizer::dorefa);
  std::string device = "auto", quantizer = "all", op = "all", sizes, json;
  std::string bits = fmt::format("{}-{}", dorefa.min_bits, dorefa.max_bits);
  int repeat = 20, warmup = 3, threads = 0;
  double weight_std = 0.1;
  app.add_option("--device", device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  app.add_option("--quantizer", quantizer, mq::kernels::quantizer_names() + " or all")
      ->capture_default_str();
  app.add_option("--bits", bits, "dorefa bitwidths: list and ranges, e.g. 1,2,4-8")
      ->capture_default_str();
  app.add_option("--op", op, "forward, backward, calibration or all")->capture_default_str();
  app.add_option("--sizes", sizes,
                 "element counts, e.g. 432,1M,16M (default: every ResNet20 layer size, 1M, 16M)");
  app.add_option("--repeat", repeat, "timed runs per row")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--warmup", warmup, "untimed runs first")->capture_default_str()->check(CLI::Range(0, 100000));
  app.add_option("--threads", threads, "CPU threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
  app.add_option("--weight-std", weight_std,
                 "standard deviation of the normal test weights (dorefa on the CPU is faster "
                 "where |W| < 0.5, as in trained nets)")
      ->capture_default_str();  // checked (positive, finite) by run_quantize_bench
  app.add_option("--json", json, "also write the rows as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  try {
    mq::bench::QuantBenchConfig cfg;
    cfg.cuda = mq::Device::parse(device).is_cuda();
    if (quantizer == "all") {
      for (const auto& row : mq::kernels::kQuantizerTable) cfg.quantizers.push_back(row.kind);
    } else if (const auto* row = mq::kernels::find_quantizer(quantizer)) {
      cfg.quantizers = {row->kind};
    } else {
      mq::fail("--quantizer: '{}' is not one of {}, all", quantizer,
               mq::kernels::quantizer_names());
    }
    cfg.bits = mq::bench::parse_int_list(bits, dorefa.min_bits, dorefa.max_bits, "--bits");
    if (op == "all") cfg.ops = {mq::bench::QuantOp::forward, mq::bench::QuantOp::backward,
                               mq::bench::QuantOp::calibration};
    else if (op == "forward") cfg.ops = {mq::bench::QuantOp::forward};
    else if (op == "backward") cfg.ops = {mq::bench::QuantOp::backward};
    else if (op == "calibration") cfg.ops = {mq::bench::QuantOp::calibration};
    else mq::fail("--op: '{}' is not one of forward, backward, calibration, all", op);
    cfg.sizes = sizes.empty() ? mq::bench::default_sizes() : mq::bench::parse_sizes(sizes);
    cfg.repeat = repeat;
    cfg.warmup = warmup;
    cfg.threads = threads;
    cfg.weight_std = weight_std;
    // opened before the run, so a bad path fails at once rather than after the timing
    std::ofstream json_out;
    if (!json.empty()) {
      json_out.open(json);
      if (!json_out) mq::fail("--json: cannot write '{}' (does its folder exist?)", json);
    }
    const auto report = mq::bench::run_quantize_bench(cfg);
    std::cout << mq::bench::format_table(report);
    if (json_out.is_open()) {
      json_out << mq::bench::to_json(report) << "\n";
      if (!json_out.flush()) mq::fail("--json: writing '{}' failed (disk full?)", json);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mqbench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
