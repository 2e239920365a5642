// The quantizer benchmark behind mqbench (benchmarks/harness): flag parsing, errors, a short CPU run
// whose rows, byte counts and JSON are checked, and the real mqbench tool's output and refusals.
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "kernels/base/error.h"
#include "engine/io/file.h"
#include "benchmarks/harness/quantize_bench.h"

using namespace mq;
using kernels::Quantizer;

TEST_CASE("mqbench parses bit lists and sizes and rejects bad ones", "[bench]") {
  REQUIRE(bench::parse_int_list("1,2,4-8", 1, 8, "--bits") == std::vector<int>{1, 2, 4, 5, 6, 7, 8});
  REQUIRE(bench::parse_int_list("3", 1, 8, "--bits") == std::vector<int>{3});
  REQUIRE_THROWS_WITH(bench::parse_int_list("0-3", 1, 8, "--bits"), Catch::Contains("--bits"));
  REQUIRE_THROWS_WITH(bench::parse_int_list("9", 1, 8, "--bits"), Catch::Contains("1..8"));
  REQUIRE_THROWS_WITH(bench::parse_int_list("2,x", 1, 8, "--bits"), Catch::Contains("'x'"));

  const auto sizes = bench::parse_sizes("432,2K,1M");
  REQUIRE(sizes.size() == 3);
  REQUIRE(sizes[0].n == 432);
  REQUIRE(sizes[0].channels == 16);  // the largest power of two up to 64 dividing 432
  REQUIRE(sizes[1].n == 2048);
  REQUIRE(sizes[2].n == 1 << 20);
  REQUIRE(sizes[2].label == "1M");
  for (const char* bad : {"", "0", "12q", "1M,", "-5", "1e11"})
    REQUIRE_THROWS_WITH(bench::parse_sizes(bad), Catch::Contains("--sizes"));

  const auto defaults = bench::default_sizes();
  REQUIRE(defaults.size() == bench::resnet20_sizes().size() + 2);
  REQUIRE(defaults.back().n == 16 << 20);
}

TEST_CASE("mqbench times every quantizer, op and bitwidth asked for on the CPU", "[bench]") {
  bench::QuantBenchConfig cfg;
  cfg.quantizers = {Quantizer::dorefa, Quantizer::bwn, Quantizer::bwn_f, Quantizer::ternary};
  cfg.bits = {1, 3};
  cfg.ops = {bench::QuantOp::forward, bench::QuantOp::backward, bench::QuantOp::calibration};
  cfg.sizes = bench::parse_sizes("4608,1000");
  cfg.warmup = 1;
  cfg.repeat = 3;
  cfg.threads = 1;
  const int threads_before = omp_get_max_threads();
  const auto report = bench::run_quantize_bench(cfg);
  REQUIRE(omp_get_max_threads() == threads_before);  // cfg.threads held for the run only
  // per size: dorefa forward at 2 bitwidths + backward + calibration, then 3 ops for each other
  REQUIRE(report.rows.size() == 2 * (4 + 3 * 3));
  for (const auto& row : report.rows) {
    INFO(row.quantizer << " " << row.bits << " " << row.op << " " << row.size.n);
    REQUIRE(row.time.median_s > 0);
    REQUIRE(row.time.min_s <= row.time.median_s);
    REQUIRE(row.time.median_s <= row.time.max_s);
    REQUIRE(row.gb_per_s == Approx(row.bytes / row.time.median_s * 1e-9));
    REQUIRE(row.copy_fraction == Approx(row.gb_per_s / row.copy_gb_per_s));
    if (row.quantizer == "bwn-f") REQUIRE(row.size.channels == (row.size.n == 4608 ? 64 : 8));
    else REQUIRE(row.size.channels == 1);
  }
  // bytes: dorefa forward reads W twice (max, then quantize) and writes W~ and W^
  REQUIRE(report.rows[0].quantizer == "dorefa");
  REQUIRE(report.rows[0].op == "forward");
  REQUIRE(report.rows[0].bytes == 16.0 * 4608);

  const auto json = nlohmann::json::parse(bench::to_json(report));
  REQUIRE(json["rows"].size() == report.rows.size());
  REQUIRE(json["weight_std"].get<double>() == 0.1);
  REQUIRE(json["device"].get<std::string>().find("cpu") == 0);
  REQUIRE(bench::format_table(report).find("weights normal(0, 0.1)") != std::string::npos);

  cfg.weight_std = 0;
  REQUIRE_THROWS_WITH(bench::run_quantize_bench(cfg), Catch::Contains("--weight-std"));
}

namespace {
struct ToolRun {
  int code = -1;
  std::string output;  // stdout and stderr
};
ToolRun run_mqbench(const std::string& args) {
  const std::string out = std::filesystem::temp_directory_path() /
                          ("mq_test_mqbench_" + std::to_string(getpid()) + ".txt");
  const std::string cmd = std::string(MQ_MQBENCH) + " " + args + " > " + out + " 2>&1";
  const int status = std::system(cmd.c_str());
  ToolRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.output = read_file(out, "mqbench output");
  std::filesystem::remove(out);
  return r;
}
}  // namespace

TEST_CASE("the mqbench tool writes its table and JSON and rejects bad flags", "[bench]") {
  const auto json = std::filesystem::temp_directory_path() /
                    ("mq_test_mqbench_" + std::to_string(getpid()) + ".json");
  ToolRun ok = run_mqbench("--device cpu --quantizer dorefa --bits 1,3 --sizes 1K --repeat 2 "
                           "--warmup 0 --threads 1 --weight-std 0.5 --json " + json.string());
  INFO(ok.output);
  REQUIRE(ok.code == 0);
  REQUIRE(ok.output.find("weights normal(0, 0.5)") != std::string::npos);
  REQUIRE(ok.output.find("calibration") != std::string::npos);
  const auto j = nlohmann::json::parse(read_file(json.string(), "mqbench JSON"));
  REQUIRE(j["rows"].size() == 4);  // forward at 1 and 3 bits, backward, calibration
  REQUIRE(j["weight_std"].get<double>() == 0.5);
  std::filesystem::remove(json);

  for (auto [args, says] : std::vector<std::pair<std::string, std::string>>{
           {"--bits 0-2", "--bits"},
           {"--sizes 12q", "--sizes"},
           {"--op sideways", "--op"},
           {"--quantizer dorefa,bwn", "--quantizer: 'dorefa,bwn' is not one of"},
           {"--weight-std -1", "--weight-std"},
           {"--device tpu", "tpu"},
           {"--json /nonexistent-mq-dir/x.json --sizes 1K", "--json"}}) {
    ToolRun bad = run_mqbench(args);
    INFO(args << " -> " << bad.output);
    REQUIRE(bad.code != 0);
    REQUIRE(bad.output.find(says) != std::string::npos);
    REQUIRE(bad.output.find("median_us") == std::string::npos);  // refused before timing
  }
}
