// PyTorch checkpoint import (engine/io/pth.h). Fixtures: scripts/make_pth_fixtures.py.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/io/npy.h"
#include "engine/io/pth.h"
#include "models/resnet_cifar.h"
#include "op_test.h"
#include "test_data_util.h"

using namespace mq;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(MQ_TEST_DATA) + "/pth/";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Same keys, dtypes, shapes and bytes as `<kDir><expect_dir>/<key>.npy`.
void require_matches_npy(const TensorMap& got, const std::string& expect_dir) {
  std::map<std::string, Tensor> want = load_npy_dir(kDir + expect_dir);
  std::vector<std::string> got_keys, want_keys;
  for (const auto& [k, v] : got) got_keys.push_back(k);
  for (const auto& [k, v] : want) want_keys.push_back(k);
  REQUIRE(got_keys == want_keys);
  for (const auto& [k, w] : want) {
    INFO("tensor " << k);
    const Tensor& g = got.at(k);
    REQUIRE(g.dtype() == w.dtype());
    REQUIRE(g.shape() == w.shape());
    REQUIRE(test::same_bytes(g, w));
  }
}

// The mq::Error message of loading `path` (the test fails when it loads).
std::string load_error(const std::string& path) {
  try {
    load_pth(path);
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("loading " << path << " should have failed");
  return "";
}
std::string decode_error(const std::string& bytes, const std::string& source = "mem.pth") {
  try {
    decode_pth(bytes, source);
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("decoding " << source << " should have failed");
  return "";
}

// The legacy header pickles (magic number, protocol version, sys info) of a real file.
std::string legacy_header() {
  std::string b = read_bytes(kDir + "tiny_legacy.pth");
  size_t end = b.find("long");  // the last key of the sys-info dict, then BINPUT, BININT1, u, .
  REQUIRE(end != std::string::npos);
  end += 4 + 2 + 2 + 1 + 1 + 1;  // "long", BINPUT, BININT1, SETITEMS, SETITEMS, STOP
  REQUIRE(b[end - 1] == '.');
  return b.substr(0, end);
}

}  // namespace

TEST_CASE("pth: tiny state dict, zip and legacy formats, equals the npy expectations", "[pth]") {
  for (const char* name : {"tiny_zip", "tiny_legacy", "tiny_deflated", "tiny_dataparallel"}) {
    INFO(name);
    PthInfo info;
    TensorMap sd = load_pth(kDir + name + ".pth", &info);
    require_matches_npy(sd, "tiny");
    CHECK(info.format == (std::string(name) == "tiny_legacy" ? "legacy" : "zip"));
    CHECK(info.wrapper_key.empty());
    CHECK(info.stripped_module_prefix == (std::string(name) == "tiny_dataparallel"));
    CHECK(info.converted.empty());
    CHECK(sd.at("1.num_batches_tracked").dtype() == DType::i64);
    CHECK(sd.at("1.num_batches_tracked").dim() == 0);
  }
}

TEST_CASE("pth: strided, offset, shared, f64/f16/i64, 0-dim and empty tensors", "[pth]") {
  for (const char* name : {"views_zip", "views_legacy"}) {
    INFO(name);
    PthInfo info;
    TensorMap sd = load_pth(kDir + name + ".pth", &info);
    require_matches_npy(sd, "views");
    std::vector<std::string> converted = info.converted;
    std::sort(converted.begin(), converted.end());
    CHECK(converted == std::vector<std::string>{"f16", "f64"});
    CHECK(sd.at("transposed").shape() == Shape{4, 3});
    CHECK(sd.at("i64").to_vector<int64_t>()[3] == (int64_t{1} << 40));
    CHECK(sd.at("scalar").item() == 2.5);
    CHECK(!sd.at("row_slice").same_storage(sd.at("base")));  // copies, not views
  }
}

TEST_CASE("pth: protocol 4, bfloat16, half edge values, Parameters, a training checkpoint",
          "[pth]") {
  for (const char* name : {"extras_zip", "extras_legacy", "wrapped_model_zip"}) {
    INFO(name);
    PthInfo info;
    TensorMap sd = load_pth(kDir + name + ".pth", &info);
    require_matches_npy(sd, "extras");
    CHECK(info.wrapper_key == (std::string(name) == "wrapped_model_zip" ? "model" : ""));
    std::vector<float> h = sd.at("half_edges").to_vector<float>();
    CHECK(h[0] == std::ldexp(1.0f, -24));  // the smallest subnormal half
    CHECK(h[2] == 65504.0f);
    CHECK(std::isinf(h[3]));
    CHECK(std::signbit(h[4]));
  }
}

TEST_CASE("pth: ResNet20 plain (zip) and wrapped in {'state_dict': ...} (legacy)", "[pth]") {
  PthInfo zinfo, linfo;
  TensorMap z = load_pth(kDir + "resnet20_zip.pth", &zinfo);
  TensorMap l = load_pth(kDir + "resnet20_legacy_wrapped.pth", &linfo);
  require_matches_npy(z, "resnet20");
  require_matches_npy(l, "resnet20");
  CHECK(zinfo.wrapper_key.empty());
  CHECK(linfo.wrapper_key == "state_dict");
  CHECK(linfo.format == "legacy");

  // The imported weights drive mq's ResNet20 to PyTorch's eval-mode logits.
  ResNetCifar net(20, 10);
  net.load_state_dict(l, /*strict=*/true);
  net.eval();
  Tensor x = load_npy(kDir + "resnet20_forward/input.npy");
  Tensor want = load_npy(kDir + "resnet20_forward/logits.npy");
  Tensor got;
  {
    NoGradGuard no_grad;
    got = net.forward(x);
  }
  test::require_close(got, want, 1e-4, 1e-4);
}

TEST_CASE("pth: a global outside the whitelist is refused, nothing runs", "[pth]") {
  fs::remove("/tmp/mq_pth_pwned");
  for (const char* name : {"malicious_zip", "malicious_legacy"}) {
    std::string msg = load_error(kDir + name + ".pth");
    INFO(msg);
    CHECK(msg.find(name) != std::string::npos);
    CHECK(msg.find("global 'posix.system' is not allowed") != std::string::npos);
    CHECK(msg.find("pickle offset") != std::string::npos);
    CHECK(msg.find("opcode 0x63 (GLOBAL)") != std::string::npos);
  }
  CHECK(!fs::exists("/tmp/mq_pth_pwned"));
}

TEST_CASE("pth: unknown and unsupported opcodes are refused with their offset", "[pth]") {
  const std::string head = legacy_header();
  std::string msg = decode_error(head + "\x80\x02\xff.");
  INFO(msg);
  CHECK(msg.find("mem.pth: pickle offset " + std::to_string(head.size() + 2)) !=
        std::string::npos);
  CHECK(msg.find("opcode 0xff (not a pickle opcode)") != std::string::npos);
  CHECK(msg.find("unsupported opcode") != std::string::npos);

  msg = decode_error(head + "\x80\x02\x8f.");  // EMPTY_SET: real opcode, not in the subset
  CHECK(msg.find("EMPTY_SET") != std::string::npos);
  msg = decode_error("\x80\x02" "cos\nsystem\n.");
  CHECK(msg.find("global 'os.system' is not allowed") != std::string::npos);
  msg = decode_error("\x80\x02(i.");
  CHECK(msg.find("INST") != std::string::npos);
}

TEST_CASE("pth: truncated, damaged and incomplete files are refused", "[pth]") {
  std::string msg = load_error(kDir + "truncated_zip.pth");
  CHECK(msg.find("truncated_zip.pth") != std::string::npos);
  CHECK(msg.find("truncated") != std::string::npos);
  msg = load_error(kDir + "truncated_legacy.pth");
  CHECK(msg.find("truncated_legacy.pth") != std::string::npos);
  CHECK(msg.find("truncated") != std::string::npos);

  msg = load_error(kDir + "missing_storage_zip.pth");
  INFO(msg);
  CHECK(msg.find("storage '0'") != std::string::npos);
  CHECK(msg.find("archive/data/0") != std::string::npos);
  msg = load_error(kDir + "missing_storage_legacy.pth");
  CHECK(msg.find("missing from the file's storage list") != std::string::npos);

  msg = load_error(kDir + "bool_zip.pth");
  CHECK(msg.find("tensor 'mask'") != std::string::npos);
  CHECK(msg.find("torch.bool is not supported") != std::string::npos);

  CHECK(load_error(kDir + "does_not_exist.pth").find("cannot open") != std::string::npos);
  CHECK(decode_error("hello").find("not a PyTorch checkpoint") != std::string::npos);
  CHECK(decode_error(legacy_header() + "\x80\x02]." + "\x80\x02].")
            .find("expected a state dict") != std::string::npos);
}

TEST_CASE("pth: every prefix and every flipped byte fails cleanly or loads", "[pth]") {
  for (const char* name : {"tiny_zip", "tiny_legacy", "tiny_deflated", "views_legacy"}) {
    INFO(name);
    const std::string full = read_bytes(kDir + name + ".pth");
    for (size_t n = 0; n < full.size(); ++n) {
      INFO("prefix of " << n << " bytes");
      CHECK_THROWS_AS(decode_pth(full.substr(0, n), name), Error);
    }
    for (size_t i = 0; i < full.size(); ++i) {
      std::string b = full;
      b[i] = static_cast<char>(b[i] ^ 0x5a);
      try {
        decode_pth(b, name);
      } catch (const Error&) {  // any other exception type fails the test
      }
    }
  }
}
