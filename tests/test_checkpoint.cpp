// mq checkpoints (engine/io/checkpoint.h).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/io/checkpoint.h"
#include "op_test.h"
#include "test_data_util.h"

using namespace mq;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() /
               ("mq_test_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void write_bytes(const fs::path& p, const std::string& b) {
  std::ofstream(p, std::ios::binary) << b;
}

TensorMap sample() {
  TensorMap m;
  m["conv.weight"] = test::randn({4, 3, 3, 3}, 1, DType::f32);
  m["double"] = test::randn({2, 5}, 2, DType::f64);
  m["bn.num_batches_tracked"] = Tensor::scalar(12345, DType::i64);
  m["labels"] = Tensor::from_vector<int64_t>({-1, 0, int64_t{1} << 50}, {3});
  m["ints"] = Tensor::from_vector<int32_t>({7, -8}, {2});
  m["bytes"] = Tensor::from_vector<uint8_t>({0, 128, 255}, {3});
  m["zero_dim"] = Tensor::scalar(3.25);
  m["empty"] = Tensor::empty({0, 4});
  return m;
}

std::string load_error(const fs::path& p) {
  try {
    load_checkpoint(p.string());
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("loading " << p << " should have failed");
  return "";
}

}  // namespace

TEST_CASE("checkpoint: round trip of every dtype, 0-dim and empty tensors, metadata",
          "[checkpoint]") {
  fs::path dir = temp_dir("roundtrip");
  fs::path path = dir / "model.mqck";
  TensorMap in = sample();
  nlohmann::json meta = {{"epoch", 7}, {"arch", "resnet20"}, {"lr", 0.1}, {"seeds", {1, 2, 3}}};
  save_checkpoint(path.string(), in, meta);
  Checkpoint ck = load_checkpoint(path.string());
  CHECK(ck.meta == meta);
  REQUIRE(ck.tensors.size() == in.size());
  for (const auto& [name, t] : in) {
    INFO(name);
    const Tensor& u = ck.tensors.at(name);
    REQUIRE(u.dtype() == t.dtype());
    REQUIRE(u.shape() == t.shape());
    REQUIRE(test::same_bytes(u, t));
  }
  // Saving again over the file replaces it; no temporary file remains.
  save_checkpoint(path.string(), {{"only", Tensor::scalar(1.0)}});
  CHECK(load_checkpoint(path.string()).tensors.size() == 1);
  CHECK(load_checkpoint(path.string()).meta == nlohmann::json::object());
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  CHECK(files == std::vector<std::string>{"model.mqck"});
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: tensors that are views of a larger storage save their own data",
          "[checkpoint]") {
  Tensor whole = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {6});
  Tensor reshaped = whole.reshape({2, 3});
  std::string bytes = encode_checkpoint({{"r", reshaped}}, {});
  Checkpoint ck = decode_checkpoint(bytes, "mem");
  CHECK(ck.tensors.at("r").to_vector<float>() == whole.to_vector<float>());
  CHECK(ck.tensors.at("r").shape() == Shape{2, 3});
}

TEST_CASE("checkpoint: corruption, truncation and foreign files are errors naming the file",
          "[checkpoint]") {
  fs::path dir = temp_dir("corrupt");
  fs::path good = dir / "good.mqck";
  save_checkpoint(good.string(), sample(), {{"epoch", 1}});
  const std::string bytes = read_bytes(good);

  SECTION("a flipped payload byte fails the checksum") {
    for (size_t at : {size_t{40}, bytes.size() / 2, bytes.size() - 1}) {
      std::string b = bytes;
      b[at] ^= 0x01;
      fs::path p = dir / "flipped.mqck";
      write_bytes(p, b);
      std::string msg = load_error(p);
      INFO(msg);
      CHECK(msg.find("flipped.mqck") != std::string::npos);
      CHECK(msg.find("checksum mismatch") != std::string::npos);
    }
  }
  SECTION("every truncation is an error") {
    fs::path p = dir / "short.mqck";
    for (size_t n : {size_t{0}, size_t{5}, size_t{20}, size_t{32}, size_t{100},
                     bytes.size() - 1}) {
      write_bytes(p, bytes.substr(0, n));
      std::string msg = load_error(p);
      INFO(msg);
      CHECK(msg.find("short.mqck") != std::string::npos);
      if (n >= 32) CHECK(msg.find("truncated checkpoint") != std::string::npos);
    }
    for (size_t n = 0; n < bytes.size(); ++n)
      CHECK_THROWS_AS(decode_checkpoint(bytes.substr(0, n), "mem"), Error);
  }
  SECTION("wrong magic, wrong version, trailing bytes") {
    fs::path p = dir / "x.mqck";
    write_bytes(p, "\x93NUMPY and more bytes than a header has, really");
    CHECK(load_error(p).find("not an mq checkpoint") != std::string::npos);
    std::string b = bytes;
    b[8] = 9;
    write_bytes(p, b);
    CHECK(load_error(p).find("version 9 is not supported") != std::string::npos);
    write_bytes(p, bytes + "x");
    CHECK(load_error(p).find("corrupt checkpoint") != std::string::npos);
    CHECK(load_error(dir / "missing.mqck").find("cannot open") != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: a failed save leaves neither a temporary file nor a changed target",
          "[checkpoint]") {
  fs::path dir = temp_dir("atomic");
  fs::path path = dir / "ck.mqck";
  save_checkpoint(path.string(), {{"a", Tensor::scalar(1.0)}}, {{"v", 1}});
  // An undefined tensor fails while encoding, before anything is written.
  CHECK_THROWS_AS(save_checkpoint(path.string(), {{"bad", Tensor()}}), Error);
  // A directory in the way of the rename fails after the temporary file was written.
  fs::create_directories(dir / "blocked.mqck" / "inside");
  CHECK_THROWS_AS(save_checkpoint((dir / "blocked.mqck").string(), {}), Error);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  CHECK(files == std::vector<std::string>{"blocked.mqck", "ck.mqck"});
  CHECK(load_checkpoint(path.string()).meta["v"] == 1);
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: CUDA tensors are copied to the host", "[checkpoint][cuda]") {
  if (!test::cuda_available_or_skip()) return;
  Tensor t = test::randn({3, 4}, 5, DType::f32);
  Checkpoint ck = decode_checkpoint(encode_checkpoint({{"t", t.to(Device::cuda(0))}}, {}), "mem");
  CHECK(ck.tensors.at("t").is_cpu());
  CHECK(ck.tensors.at("t").to_vector<float>() == t.to_vector<float>());
}

TEST_CASE("checkpoint sub-states: add_prefixed and strip_prefix round-trip", "[checkpoint]") {
  TensorMap model = {{"conv.weight", Tensor::full({2}, 1.0)}, {"fc.bias", Tensor::full({1}, 2.0)}};
  std::vector<std::pair<std::string, Tensor>> optim = {{"step", Tensor::full({}, 3.0)}};
  TensorMap all;
  add_prefixed(all, "model.", model);
  add_prefixed(all, "trainer.optim.", optim);
  REQUIRE(all.size() == 3);
  CHECK(all.count("model.conv.weight"));
  CHECK(all.count("trainer.optim.step"));
  TensorMap back = strip_prefix(all, "model.");
  REQUIRE(back.size() == 2);
  CHECK(back.at("fc.bias").item() == 2.0);
  CHECK(strip_prefix(all, "trainer.").count("optim.step"));
  CHECK(strip_prefix(all, "none.").empty());
}
