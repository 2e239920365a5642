#include <filesystem>
#include <fstream>

#include "engine/io/npy.h"
#include "op_test.h"
#include "test_data_util.h"

using namespace mq;
using namespace mq::test;
namespace fs = std::filesystem;

namespace {
// A .npy file as numpy writes it, from a header dict and raw data bytes.
std::string make_npy(const std::string& dict, const std::string& data, int major = 1) {
  std::string h = dict;
  size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = std::string("\x93NUMPY", 6) + char(major) + '\0';
  for (size_t i = 0; i < prefix - 8; ++i) out += char((h.size() >> (8 * i)) & 0xff);
  return out + h + data;
}

std::string floats(std::vector<float> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("mq_test_npy_" + name + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
}  // namespace

TEST_CASE("npy round trips every supported dtype and shape", "[npy]") {
  for (Shape shape : {Shape{}, Shape{0}, Shape{5}, Shape{2, 3}, Shape{2, 1, 3, 4}}) {
    Tensor f32 = randn(shape, 1, DType::f32), f64 = randn(shape, 2, DType::f64);
    std::vector<int64_t> vi64(shape_numel(shape));
    std::vector<int32_t> vi32(vi64.size());
    std::vector<uint8_t> vu8(vi64.size());
    for (size_t i = 0; i < vi64.size(); ++i)
      vi64[i] = int64_t(i) * 1000000007LL - 5, vi32[i] = -int32_t(i), vu8[i] = uint8_t(250 + i);
    for (const Tensor& t : {f32, f64, Tensor::from_vector(vi64, shape),
                            Tensor::from_vector(vi32, shape), Tensor::from_vector(vu8, shape)}) {
      std::string bytes = encode_npy(t);
      REQUIRE(bytes.size() % 64 == t.nbytes() % 64);  // header padded to 64 bytes
      Tensor back = decode_npy(bytes, "mem");
      REQUIRE(back.shape() == t.shape());
      REQUIRE(back.dtype() == t.dtype());
      REQUIRE(same_bytes(back, t));
    }
  }
}

TEST_CASE("npy writes numpy's header", "[npy]") {
  std::string b = encode_npy(Tensor::zeros({16}, DType::f32));
  REQUIRE(b.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  REQUIRE(b.find("{'descr': '<f4', 'fortran_order': False, 'shape': (16,), }") == 10);
  REQUIRE(b[127] == '\n');
  REQUIRE(encode_npy(Tensor::zeros({4, 8}, DType::i64)).find("'<i8'") != std::string::npos);
  REQUIRE(encode_npy(Tensor::zeros({2}, DType::u8)).find("'|u1'") != std::string::npos);
  REQUIRE(encode_npy(Tensor::scalar(1.0)).find("'shape': ()") != std::string::npos);
}

TEST_CASE("npy reads version 2.0 headers and numpy's variations", "[npy]") {
  Tensor t = decode_npy(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
                                 floats({1, 2, 3, 4}), 2),
                        "v2");
  REQUIRE(t.shape() == Shape{2, 2});
  REQUIRE(t.to_vector<float>() == std::vector<float>{1, 2, 3, 4});
  // other key order, double quotes, no trailing comma
  Tensor u = decode_npy(make_npy("{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"<f4\"}",
                                 floats({5, 6, 7})),
                        "keys");
  REQUIRE(u.to_vector<float>() == std::vector<float>{5, 6, 7});
}

TEST_CASE("npy rejects what it cannot read, naming the file", "[npy]") {
  std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  auto rejects = [](const std::string& bytes, const std::string& what) {
    REQUIRE_THROWS_WITH(decode_npy(bytes, "x.npy"),
                        Catch::Contains("x.npy") && Catch::Contains(what));
  };
  rejects("PK\x03\x04 not numpy at all", "bad magic");
  rejects("", "bad magic");
  rejects(make_npy(good, floats({1})), "truncated data");
  rejects(make_npy(good, floats({1, 2, 3})), "unexpected bytes");
  rejects(make_npy(good, floats({1, 2})).substr(0, 20), "truncated .npy header");
  rejects(make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", floats({1, 2})),
          "Fortran");
  rejects(make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", floats({1, 2})),
          "big-endian");
  rejects(make_npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", floats({1})),
          "unsupported dtype '<f2'");
  rejects(make_npy("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", "ab"),
          "unsupported dtype");
  rejects(make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
                   floats({1, 2})),
          "structured");
  rejects(make_npy("{'descr': '<f4', 'shape': (2,), }", floats({1, 2})), "lacks");
  rejects(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", floats({1})),
          "malformed");
  std::string v3 = make_npy(good, floats({1, 2}));
  v3[6] = 3;
  rejects(v3, "version 3.0");
  REQUIRE_THROWS_WITH(load_npy("/nonexistent/dir/a.npy"),
                      Catch::Contains("/nonexistent/dir/a.npy") && Catch::Contains("cannot open"));
}

TEST_CASE("npy files and directories round trip", "[npy]") {
  fs::path d = temp_dir("dir");
  Tensor a = randn({3, 4}, 7, DType::f32);
  Tensor b = Tensor::from_vector<int64_t>({1, 2, 3}, {3});
  save_npy_dir(d.string(), {{"layer1.0.conv1.weight", a}, {"y", b}}, "final.");
  save_npy((d / "other.npy").string(), a);  // no prefix: ignored below
  auto m = load_npy_dir(d.string(), "final.");
  REQUIRE(m.size() == 2);
  REQUIRE(m.begin()->first == "layer1.0.conv1.weight");  // sorted by name
  REQUIRE(m["layer1.0.conv1.weight"].to_vector<float>() == a.to_vector<float>());
  REQUIRE(m["y"].to_vector<int64_t>() == b.to_vector<int64_t>());
  REQUIRE(load_npy_dir(d.string()).size() == 3);
  REQUIRE_THROWS_WITH(load_npy_dir(d.string(), "nothing."), Catch::Contains("no files named"));
  REQUIRE_THROWS_WITH(load_npy_dir((d / "missing").string()), Catch::Contains("not a directory"));
  fs::remove_all(d);
}

TEST_CASE("npy reads the golden files", "[npy]") {
  std::string dir = std::string(MQ_TEST_DATA) + "/golden/metaquant-ref";
  Tensor y = load_npy(dir + "/inputs_y.npy");
  REQUIRE(y.dtype() == DType::i64);
  REQUIRE(y.dim() == 2);
  Tensor w = load_npy(dir + "/init/conv1.weight.npy");
  REQUIRE(w.dtype() == DType::f32);
  REQUIRE(w.shape() == Shape{16, 3, 3, 3});
  // Re-encoding gives numpy's bytes back exactly.
  std::ifstream in(dir + "/init/conv1.weight.npy", std::ios::binary);
  std::string original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(encode_npy(w) == original);
}
