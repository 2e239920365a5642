// Hostile dataset files and names (issue 18): a gzip IDX that inflates far beyond its declared
// size, truncated and garbage files, overflowing dimensions, directories and symbolic-link loops
// where files belong, and synthetic sizes that cannot be allocated. Each is one mq::Error naming
// the file (or the dataset name), never a std:: exception or a huge allocation.
#include <catch2/catch.hpp>

#include <zlib.h>

#include <chrono>
#include <filesystem>

#include "data/cifar.h"
#include "data/idx.h"
#include "data/registry.h"
#include "data/synthetic.h"
#include "dataset_writers.h"
#include "kernels/base/error.h"
#include "test_data_util.h"

using namespace mq;
using Catch::Matchers::Contains;
using mq::test::TempDir;
namespace fs = std::filesystem;

namespace {

// The mq::Error message of f(); fails the test for no exception or another type.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected an mq::Error, got a std::exception: " << e.what());
  }
  FAIL("expected an mq::Error");
  return {};
}

std::vector<uint8_t> idx_header(const std::vector<uint32_t>& dims) {
  std::vector<uint8_t> h = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<uint8_t>(d >> s));
  return h;
}

// One gzip member holding `head` followed by `zeros` zero bytes, deflated in chunks so the test
// never holds the inflated size in memory.
std::vector<uint8_t> gzip_member(const std::vector<uint8_t>& head, size_t zeros) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 16);
  const std::vector<uint8_t> chunk(1 << 20, 0);
  auto pump = [&](const uint8_t* data, size_t n, int flush) {
    zs.next_in = const_cast<Bytef*>(data);
    zs.avail_in = static_cast<uInt>(n);
    do {
      zs.next_out = buf.data();
      zs.avail_out = static_cast<uInt>(buf.size());
      deflate(&zs, flush);
      out.insert(out.end(), buf.data(), buf.data() + (buf.size() - zs.avail_out));
    } while (zs.avail_out == 0 || (flush == Z_FINISH && zs.avail_in > 0));
  };
  pump(head.data(), head.size(), Z_NO_FLUSH);
  for (size_t left = zeros; left > 0;) {
    const size_t n = std::min(left, chunk.size());
    pump(chunk.data(), n, Z_NO_FLUSH);
    left -= n;
  }
  pump(nullptr, 0, Z_FINISH);
  deflateEnd(&zs);
  return out;
}

}  // namespace

TEST_CASE("hostile IDX: a gzip bomb is refused after the declared size, quickly", "[data][hostile]") {
  TempDir dir;
  const std::string f = dir.file("bomb-labels-idx1-ubyte.gz");
  // Declares 10 label bytes, inflates to 64 MiB more.
  const auto gz = gzip_member(idx_header({10}), size_t{64} << 20);
  REQUIRE(gz.size() < (size_t{1} << 20));
  mq::test::write_bytes(f, gz);
  const auto start = std::chrono::steady_clock::now();
  const std::string msg = error_of([&] { read_idx(f); });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK_THAT(msg, Contains(f) && Contains("decompresses to more than the 10 bytes"));
  // Inflating the whole 64 MiB takes a good fraction of a second (more under sanitizers); the
  // reader stops after 11 bytes.
  CHECK(seconds < 0.5);
}

TEST_CASE("hostile IDX: gzip payloads shorter than declared, trailing data, several members",
          "[data][hostile]") {
  TempDir dir;
  const std::string f = dir.file("x.gz");
  SECTION("a header declaring 4 GiB over a few bytes is truncated, not allocated") {
    auto head = idx_header({65536, 256, 256});  // 4 GiB: at the limit
    mq::test::write_bytes(f, gzip_member(head, 100));
    CHECK_THAT(error_of([&] { read_idx(f); }), Contains(f) && Contains("truncated"));
  }
  SECTION("a declared size above 4 GiB is refused before inflating") {
    mq::test::write_bytes(f, gzip_member(idx_header({65536, 256, 257}), 100));
    CHECK_THAT(error_of([&] { read_idx(f); }), Contains(f) && Contains("element count exceeds"));
  }
  SECTION("a second gzip member beyond the declared data") {
    auto one = gzip_member(idx_header({3}), 3);
    auto two = gzip_member({}, 5);
    one.insert(one.end(), two.begin(), two.end());
    mq::test::write_bytes(f, one);
    CHECK_THAT(error_of([&] { read_idx(f); }), Contains("more than the 3 bytes"));
  }
  SECTION("garbage after the gzip member") {
    auto one = gzip_member(idx_header({3}), 3);
    one.insert(one.end(), {'j', 'u', 'n', 'k', 0, 0, 0, 0, 0, 0, 0, 0});
    mq::test::write_bytes(f, one);
    CHECK_THAT(error_of([&] { read_idx(f); }), Contains(f) && Contains("corrupt gzip"));
  }
  SECTION("the header in one member, the data in the next: still one file") {
    auto one = gzip_member(idx_header({3}), 0);
    auto two = gzip_member({}, 3);
    one.insert(one.end(), two.begin(), two.end());
    mq::test::write_bytes(f, one);
    const IdxArray a = read_idx(f);
    CHECK(a.dims == std::vector<uint32_t>{3});
    CHECK(a.data == std::vector<uint8_t>{0, 0, 0});
  }
  SECTION("a gzip stream cut inside the header") {
    auto gz = gzip_member(idx_header({3, 4}), 12);
    gz.resize(12);
    mq::test::write_bytes(f, gz);
    CHECK_THAT(error_of([&] { read_idx(f); }), Contains(f) && Contains("corrupt gzip"));
  }
}

TEST_CASE("hostile IDX: magic, dimensions and sizes", "[data][hostile]") {
  TempDir dir;
  const std::string f = dir.file("x-idx3-ubyte");
  SECTION("wrong magic") {
    auto b = idx_header({2, 2, 2});
    b[1] = 0x08;
    b.resize(b.size() + 8);
    mq::test::write_bytes(f, b);
    CHECK_THAT(error_of([&] { read_idx(f); }), Contains(f) && Contains("bad IDX magic"));
  }
  SECTION("dimensions whose product overflows 64 bits") {
    auto b = idx_header({65536, 65536, 65536, 65536});  // 2^64: wraps to 0 unchecked
    mq::test::write_bytes(f, b);
    CHECK_THAT(error_of([&] { read_idx(f); }), Contains(f) && Contains("element count exceeds"));
  }
  SECTION("truncated plain file: the header holds more than the bytes present") {
    auto b = idx_header({1000, 28, 28});
    b.resize(b.size() + 500);
    mq::test::write_bytes(f, b);
    CHECK_THAT(error_of([&] { read_idx(f); }), Contains(f) && Contains("truncated"));
    mq::test::write_bytes(f, {0, 0, 8, 3, 0, 0});
    CHECK_THAT(error_of([&] { read_idx(f); }), Contains(f) && Contains("too short"));
  }
  SECTION("images padded beyond what a dataset may hold") {
    // 4.2 M 1x1 images are 4.2 MB on disk but 4.3 GB once padded to 32x32.
    const uint32_t n = 4'200'000;
    IdxArray im{{n, 1, 1}, std::vector<uint8_t>(n, 1)};
    IdxArray lb{{n}, std::vector<uint8_t>(n, 1)};
    mq::test::write_idx(dir.file("i"), im, false);
    mq::test::write_idx(dir.file("l"), lb, false);
    CHECK_THAT(error_of([&] { load_idx(dir.file("i"), dir.file("l"), 10, 32, "t"); }),
               Contains(dir.file("i")) && Contains("element count exceeds"));
  }
  SECTION("rows and columns must fit the dataset's geometry") {
    IdxArray im{{1, 70000, 1}, std::vector<uint8_t>(70000, 1)};
    mq::test::write_idx(dir.file("i"), im, false);
    mq::test::write_idx(dir.file("l"), IdxArray{{1}, {1}}, false);
    CHECK_THAT(error_of([&] { load_idx(dir.file("i"), dir.file("l"), 10, 0, "t"); }),
               Contains("70000x1 images") && Contains("1..65535"));
  }
}

TEST_CASE("hostile files: directories and symbolic-link loops where dataset files belong",
          "[data][hostile]") {
  TempDir dir;
  const std::string batch = dir.file("data_batch_1.bin");
  SECTION("CIFAR: a directory named like the batch file") {
    fs::create_directory(batch);
    CHECK_THAT(error_of([&] { read_cifar_file(batch, CifarVariant::cifar10); }),
               Contains(batch) && Contains("is a directory"));
    CHECK_THAT(error_of([&] { load_cifar(dir.str(), CifarVariant::cifar10, true); }),
               Contains(batch) && Contains("is a directory"));
  }
  SECTION("CIFAR: a symbolic-link loop as the batch file, as the data directory") {
    fs::create_symlink(batch, batch);
    CHECK_THAT(error_of([&] { read_cifar_file(batch, CifarVariant::cifar10); }),
               Contains(batch) && Contains("symlink loop"));
    CHECK_THAT(error_of([&] { load_cifar(dir.str(), CifarVariant::cifar10, true); }),
               Contains(batch) && Contains("symlink loop"));
    const std::string loop = dir.file("loop");
    fs::create_symlink(loop, loop);
    CHECK_THAT(error_of([&] { load_cifar(loop, CifarVariant::cifar10, true); }),
               Contains(loop) && Contains("symlink loop"));
  }
  SECTION("IDX and Fashion-MNIST: a directory and a loop as the IDX files") {
    fs::create_directory(dir.file("t10k-images-idx3-ubyte"));
    fs::create_symlink(dir.file("t10k-labels-idx1-ubyte"), dir.file("t10k-labels-idx1-ubyte"));
    CHECK_THAT(error_of([&] { read_idx(dir.file("t10k-images-idx3-ubyte")); }),
               Contains("is a directory"));
    CHECK_THAT(error_of([&] { read_idx(dir.file("t10k-labels-idx1-ubyte")); }),
               Contains("symlink loop"));
    CHECK_THAT(error_of([&] { load_fashion_mnist(dir.str(), false); }),
               Contains("t10k-images-idx3-ubyte") && Contains("is a directory"));
  }
  SECTION("CIFAR: a file truncated to less than a record, garbage of a wrong size") {
    mq::test::write_bytes(batch, std::vector<uint8_t>(3000, 7));
    CHECK_THAT(error_of([&] { read_cifar_file(batch, CifarVariant::cifar10); }),
               Contains(batch) && Contains("truncated"));
    mq::test::write_bytes(batch, std::vector<uint8_t>(3073 * 2 + 1, 0xFF));
    CHECK_THAT(error_of([&] { read_cifar_file(batch, CifarVariant::cifar10); }),
               Contains(batch) && Contains("not a multiple"));
    mq::test::write_bytes(batch, std::vector<uint8_t>(3073 * 2, 0xFF));
    CHECK_THAT(error_of([&] { read_cifar_file(batch, CifarVariant::cifar10); }),
               Contains(batch) && Contains("label 255"));
  }
}

TEST_CASE("hostile names: synthetic:N beyond what can be generated", "[data][hostile]") {
  // Each of these once reached a multi-terabyte allocation (bad_alloc) or a bare parse failure.
  CHECK_THAT(error_of([] { load_dataset("synthetic:99999999999", "", Split::train); }),
             Contains("synthetic:99999999999") && Contains("1..1000000"));
  CHECK_THAT(error_of([] { load_dataset("synthetic:1000001", "", Split::test); }),
             Contains("1..1000000"));
  CHECK_THAT(error_of([] { load_dataset("synthetic:99999999999999999999999", "", Split::train); }),
             Contains("1..1000000"));
  for (const char* bad : {"synthetic:", "synthetic:0", "synthetic:-5", "synthetic:1e6",
                          "synthetic:12x", "synthetic: 5"})
    CHECK_THAT(error_of([&] { load_dataset(bad, "", Split::train); }),
               Contains(bad) && Contains("synthetic:N"));
  CHECK_THAT(error_of([] { dataset_classes("synthetic:99999999999"); }), Contains("1..1000000"));
  SyntheticOptions o;
  o.count = kMaxSyntheticCount + 1;
  CHECK_THAT(error_of([&] { make_synthetic(o); }), Contains("1000000"));
  o.count = 1000;
  o.height = o.width = 1 << 20;  // 3 TB of images
  CHECK_THAT(error_of([&] { make_synthetic(o); }), Contains("element count exceeds"));
}
