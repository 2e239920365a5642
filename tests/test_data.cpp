// Data formats: CIFAR binary (round trip, every rejection), IDX plain/gzip, Fashion-MNIST,
// the synthetic generator and the dataset registry.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

#include "data/cifar.h"
#include "data/idx.h"
#include "data/registry.h"
#include "data/synthetic.h"
#include "kernels/base/error.h"
#include "dataset_writers.h"
#include "test_data_util.h"

using namespace mq;
using mq::test::TempDir;
using mq::test::write_cifar_file;
using mq::test::write_idx;
using Catch::Matchers::Contains;

namespace {

Dataset small_cifar(size_t n, int classes, uint64_t seed) {
  SyntheticOptions o;
  o.count = n;
  o.classes = classes;
  o.seed = seed;
  return make_synthetic(o);
}

// Runs f, requires it to throw mq::Error, returns the message.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected an mq::Error");
  return {};
}

IdxArray idx_images(uint32_t n, uint32_t h, uint32_t w) {
  IdxArray a{{n, h, w}, {}};
  for (uint32_t i = 0; i < n * h * w; ++i) a.data.push_back(static_cast<uint8_t>(1 + i % 251));
  return a;
}

IdxArray idx_labels(uint32_t n, int classes) {
  IdxArray a{{n}, {}};
  for (uint32_t i = 0; i < n; ++i) a.data.push_back(static_cast<uint8_t>(i % classes));
  return a;
}

}  // namespace

TEST_CASE("CIFAR-10 writer and reader round-trip", "[data]") {
  TempDir dir;
  const Dataset d = small_cifar(7, 10, 3);
  write_cifar_file(dir.file("x.bin"), d, CifarVariant::cifar10);
  CHECK(std::filesystem::file_size(dir.file("x.bin")) == 7 * 3073);
  const auto raw = mq::test::read_bytes(dir.file("x.bin"));
  CHECK(raw[3073] == d.labels[1]);
  CHECK(raw[3073 + 1 + 1024] == d.image(1)[1024]);  // first green pixel of record 1
  const Dataset r = read_cifar_file(dir.file("x.bin"), CifarVariant::cifar10);
  CHECK(r.size() == 7);
  CHECK(r.channels == 3);
  CHECK(r.height == 32);
  CHECK(r.classes == 10);
  CHECK(r.labels == d.labels);
  CHECK(r.images == d.images);
}

TEST_CASE("CIFAR-100 round-trip uses fine labels", "[data]") {
  TempDir dir;
  const Dataset d = small_cifar(9, 100, 4);
  write_cifar_file(dir.file("train.bin"), d, CifarVariant::cifar100);
  const auto raw = mq::test::read_bytes(dir.file("train.bin"));
  REQUIRE(raw.size() == 9 * 3074);
  CHECK(raw[3074 * 2] == d.labels[2] / 5);  // coarse
  CHECK(raw[3074 * 2 + 1] == d.labels[2]);  // fine
  const Dataset r = load_cifar(dir.str(), CifarVariant::cifar100, true);
  CHECK(r.name == "cifar100");
  CHECK(r.classes == 100);
  CHECK(r.labels == d.labels);
  CHECK(r.images == d.images);
}

TEST_CASE("CIFAR-10 split concatenates batches in order, also from the archive folder", "[data]") {
  TempDir dir;
  const auto sub = std::filesystem::path(dir.str()) / "cifar-10-batches-bin";
  std::filesystem::create_directories(sub);
  Dataset expected;
  for (int i = 1; i <= 5; ++i) {
    const Dataset part = small_cifar(static_cast<size_t>(i), 10, 10 + i);
    write_cifar_file((sub / ("data_batch_" + std::to_string(i) + ".bin")).string(), part,
                     CifarVariant::cifar10);
    if (i == 1) expected = part;
    else expected.append(part);
  }
  write_cifar_file((sub / "test_batch.bin").string(), small_cifar(3, 10, 99),
                   CifarVariant::cifar10);
  const Dataset train = load_dataset("cifar10", dir.str(), Split::train);
  CHECK(train.size() == 15);
  CHECK(train.labels == expected.labels);
  CHECK(train.images == expected.images);
  CHECK(load_dataset("cifar10", sub.string(), Split::test).size() == 3);
}

TEST_CASE("CIFAR files are rejected with messages naming the file and the fix", "[data]") {
  TempDir dir;
  const std::string f = dir.file("data_batch_1.bin");
  write_cifar_file(f, small_cifar(3, 10, 5), CifarVariant::cifar10);
  auto bytes = mq::test::read_bytes(f);

  SECTION("truncated") {
    bytes.resize(bytes.size() - 100);
    mq::test::write_bytes(f, bytes);
    const auto msg = error_of([&] { read_cifar_file(f, CifarVariant::cifar10); });
    CHECK_THAT(msg, Contains(f) && Contains("not a multiple of the 3073-byte") &&
                        Contains("truncated") && Contains("scripts/get-cifar.sh 10"));
  }
  SECTION("empty") {
    mq::test::write_bytes(f, {});
    CHECK_THAT(error_of([&] { read_cifar_file(f, CifarVariant::cifar10); }),
               Contains(f) && Contains("empty file"));
  }
  SECTION("CIFAR-10 label out of range") {
    bytes[3073] = 10;
    mq::test::write_bytes(f, bytes);
    CHECK_THAT(error_of([&] { read_cifar_file(f, CifarVariant::cifar10); }),
               Contains(f) && Contains("record 1") && Contains("label 10") && Contains("0..9"));
  }
  SECTION("CIFAR-100 fine and coarse labels out of range") {
    const std::string g = dir.file("train.bin");
    write_cifar_file(g, small_cifar(2, 100, 6), CifarVariant::cifar100);
    auto b = mq::test::read_bytes(g);
    b[3074 + 1] = 100;
    mq::test::write_bytes(g, b);
    CHECK_THAT(error_of([&] { read_cifar_file(g, CifarVariant::cifar100); }),
               Contains(g) && Contains("label 100") && Contains("0..99"));
    b[3074 + 1] = 0;
    b[0] = 20;
    mq::test::write_bytes(g, b);
    CHECK_THAT(error_of([&] { read_cifar_file(g, CifarVariant::cifar100); }),
               Contains("coarse label 20"));
  }
  SECTION("a CIFAR-10 file read as CIFAR-100 has the wrong size") {
    CHECK_THAT(error_of([&] { read_cifar_file(f, CifarVariant::cifar100); }),
               Contains("3074-byte"));
  }
  SECTION("missing file, missing directory") {
    for (int i = 2; i <= 4; ++i)
      write_cifar_file(dir.file("data_batch_" + std::to_string(i) + ".bin"),
                       small_cifar(1, 10, 7), CifarVariant::cifar10);
    CHECK_THAT(error_of([&] { load_cifar(dir.str(), CifarVariant::cifar10, true); }),
               Contains("data_batch_5.bin") && Contains("scripts/get-cifar.sh 10 " + dir.str()));
    CHECK_THAT(error_of([&] { load_cifar(dir.str(), CifarVariant::cifar100, false); }),
               Contains("test.bin") && Contains("scripts/get-cifar.sh 100"));
    CHECK_THAT(error_of([&] { load_cifar(dir.file("nope"), CifarVariant::cifar10, true); }),
               Contains("does not exist") && Contains("get-cifar.sh 10"));
    CHECK_THAT(error_of([&] { read_cifar_file(dir.file("nope.bin"), CifarVariant::cifar10); }),
               Contains("nope.bin") && Contains("not found"));
  }
  SECTION("writer refuses images of the wrong geometry or class count") {
    SyntheticOptions o;
    o.channels = 1;
    o.count = 2;
    CHECK_THROWS_AS(write_cifar_file(f, make_synthetic(o), CifarVariant::cifar10), Error);
    CHECK_THROWS_AS(write_cifar_file(f, small_cifar(2, 100, 1), CifarVariant::cifar10), Error);
  }
}

TEST_CASE("IDX plain and gzip read the same, 28x28 is zero-padded to 32x32", "[data]") {
  TempDir dir;
  const IdxArray images = idx_images(5, 28, 28), labels = idx_labels(5, 10);
  for (bool gz : {false, true}) {
    const std::string sfx = gz ? ".gz" : "";
    write_idx(dir.file("i-idx3-ubyte" + sfx), images, gz);
    write_idx(dir.file("l-idx1-ubyte" + sfx), labels, gz);
    const IdxArray back = read_idx(dir.file("i-idx3-ubyte" + sfx));
    CHECK(back.dims == images.dims);
    CHECK(back.data == images.data);
    const Dataset d = load_idx(dir.file("i-idx3-ubyte" + sfx), dir.file("l-idx1-ubyte" + sfx),
                               10, 32, "t");
    REQUIRE(d.size() == 5);
    CHECK(d.channels == 1);
    CHECK(d.height == 32);
    CHECK(d.width == 32);
    CHECK(d.labels[3] == 3);
    for (size_t i = 0; i < 5; ++i)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) {
          const bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
          const uint8_t want = inside ? images.data[(i * 28 + (y - 2)) * 28 + (x - 2)] : 0;
          REQUIRE(d.image(i)[y * 32 + x] == want);
        }
  }
  const auto gz = mq::test::read_bytes(dir.file("i-idx3-ubyte.gz"));
  CHECK((gz[0] == 0x1f && gz[1] == 0x8b));
}

TEST_CASE("IDX files are rejected with messages naming the file", "[data]") {
  TempDir dir;
  const std::string im = dir.file("i-idx3-ubyte"), lb = dir.file("l-idx1-ubyte");
  write_idx(im, idx_images(4, 28, 28), false);
  write_idx(lb, idx_labels(4, 10), false);
  auto bytes = mq::test::read_bytes(im);

  SECTION("bad magic") {
    bytes[0] = 0x12;
    mq::test::write_bytes(im, bytes);
    CHECK_THAT(error_of([&] { read_idx(im); }), Contains(im) && Contains("bad IDX magic"));
  }
  SECTION("unsupported element type") {
    bytes[2] = 0x0D;
    mq::test::write_bytes(im, bytes);
    CHECK_THAT(error_of([&] { read_idx(im); }), Contains("0x0d (float)"));
  }
  SECTION("truncated data and trailing bytes") {
    bytes.pop_back();
    mq::test::write_bytes(im, bytes);
    CHECK_THAT(error_of([&] { read_idx(im); }), Contains(im) && Contains("truncated"));
    bytes.push_back(0);
    bytes.push_back(0);
    mq::test::write_bytes(im, bytes);
    CHECK_THAT(error_of([&] { read_idx(im); }), Contains("longer than declared"));
    mq::test::write_bytes(im, {0, 0, 8});
    CHECK_THAT(error_of([&] { read_idx(im); }), Contains("too short"));
  }
  SECTION("count mismatch between images and labels") {
    write_idx(lb, idx_labels(3, 10), false);
    CHECK_THAT(error_of([&] { load_idx(im, lb, 10, 32, "t"); }),
               Contains("4 images") && Contains("3 labels") && Contains(lb));
  }
  SECTION("swapped files, label out of range, image too large for the padding") {
    CHECK_THAT(error_of([&] { load_idx(lb, im, 10, 32, "t"); }), Contains("3 dimensions"));
    CHECK_THAT(error_of([&] { load_idx(im, lb, 3, 32, "t"); }),
               Contains(lb) && Contains("label 3") && Contains("0..2"));
    CHECK_THAT(error_of([&] { load_idx(im, lb, 10, 16, "t"); }), Contains("do not fit"));
  }
  SECTION("corrupt and truncated gzip") {
    const std::string g = dir.file("i-idx3-ubyte.gz");
    write_idx(g, idx_images(40, 28, 28), true);
    auto gz = mq::test::read_bytes(g);
    auto damaged = gz;
    for (size_t i = 20; i < damaged.size() - 8; i += 7) damaged[i] ^= 0x5A;
    mq::test::write_bytes(g, damaged);
    CHECK_THAT(error_of([&] { read_idx(g); }), Contains(g) && Contains("corrupt gzip"));
    gz.resize(gz.size() / 2);
    mq::test::write_bytes(g, gz);
    CHECK_THAT(error_of([&] { read_idx(g); }), Contains(g) && Contains("unexpected end"));
  }
  SECTION("missing files") {
    CHECK_THAT(error_of([&] { read_idx(dir.file("nope")); }), Contains("nope") && Contains("not found"));
    CHECK_THAT(error_of([&] { load_fashion_mnist(dir.str(), false); }),
               Contains("t10k-images-idx3-ubyte") && Contains("dataset-fashion-mnist"));
  }
}

TEST_CASE("Fashion-MNIST test set from the Debian package", "[data]") {
  const std::string dir = kFashionMnistDefaultDir;
  if (!std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz") &&
      !std::filesystem::exists(dir + "/t10k-images-idx3-ubyte")) {
    WARN("skipped: Fashion-MNIST not installed in " << dir << " (apt install dataset-fashion-mnist)");
    return;
  }
  const Dataset d = load_dataset("fashion-mnist", "", Split::test);
  CHECK(d.size() == 10000);
  CHECK(d.channels == 1);
  CHECK(d.height == 32);
  CHECK(d.width == 32);
  std::vector<int> per_class(10, 0);
  for (auto l : d.labels) {
    REQUIRE(l >= 0);
    REQUIRE(l < 10);
    ++per_class[l];
  }
  for (int c : per_class) CHECK(c == 1000);
  uint64_t border = 0;  // the 2-pixel padding ring is zero
  for (size_t i = 0; i < d.size(); ++i)
    for (int x = 0; x < 32; ++x) border += d.image(i)[x] + d.image(i)[31 * 32 + x];
  CHECK(border == 0);
}

TEST_CASE("synthetic data is seeded, balanced enough and learnable", "[data]") {
  SyntheticOptions o;
  o.count = 2000;
  o.seed = 11;
  const Dataset a = make_synthetic(o), b = make_synthetic(o);
  CHECK(a.images == b.images);
  CHECK(a.labels == b.labels);
  o.seed = 12;
  o.count = 500;
  const Dataset test = make_synthetic(o);
  CHECK(test.images != std::vector<uint8_t>(a.images.begin(), a.images.begin() + test.images.size()));
  a.validate();
  // Nearest class mean (over channel means and row/column profiles) separates the classes.
  auto features = [](const Dataset& d, size_t i) {
    std::vector<double> f;
    const uint8_t* p = d.image(i);
    for (int c = 0; c < d.channels; ++c) {
      double s = 0;
      for (int k = 0; k < 1024; ++k) s += p[c * 1024 + k];
      f.push_back(s / 1024);
    }
    return f;
  };
  std::vector<std::vector<double>> mean(10, std::vector<double>(3, 0.0));
  std::vector<int> count(10, 0);
  for (size_t i = 0; i < a.size(); ++i) {
    auto f = features(a, i);
    for (int c = 0; c < 3; ++c) mean[a.labels[i]][c] += f[c];
    ++count[a.labels[i]];
  }
  for (int k = 0; k < 10; ++k) {
    REQUIRE(count[k] > 100);
    for (auto& m : mean[k]) m /= count[k];
  }
  int correct = 0;
  for (size_t i = 0; i < test.size(); ++i) {
    auto f = features(test, i);
    int best = 0;
    double best_d = 1e300;
    for (int k = 0; k < 10; ++k) {
      double dist = 0;
      for (int c = 0; c < 3; ++c) dist += (f[c] - mean[k][c]) * (f[c] - mean[k][c]);
      if (dist < best_d) best_d = dist, best = k;
    }
    correct += best == test.labels[i];
  }
  CHECK(correct > 0.8 * test.size());
}

TEST_CASE("dataset registry", "[data]") {
  const Dataset train = load_dataset("synthetic:300", "", Split::train);
  const Dataset test = load_dataset("synthetic:300", "", Split::test);
  CHECK(train.size() == 300);
  CHECK(test.size() == 100);
  CHECK(train.images != std::vector<uint8_t>(test.images.begin(), test.images.end()));
  CHECK(dataset_classes("cifar100") == 100);
  CHECK(dataset_normalization("cifar10").mean.size() == 3);
  CHECK(dataset_normalization("fashion-mnist").std == std::vector<float>{0.3530f});
  CHECK_THAT(error_of([] { load_dataset("imagenet", "", Split::train); }),
             Contains("cifar10, cifar100, fashion-mnist, synthetic"));
  CHECK_THAT(error_of([] { load_dataset("synthetic:x", "", Split::train); }), Contains("synthetic:N"));
  CHECK_THAT(error_of([] { load_dataset("cifar10", "", Split::train); }),
             Contains("scripts/get-cifar.sh 10"));
}

TEST_CASE("scripts/get-cifar.sh against local archives (tests/test_get_cifar.sh)", "[data]") {
  if (std::system("command -v bash >/dev/null && command -v tar >/dev/null && "
                  "command -v md5sum >/dev/null") != 0) {
    WARN("skipped: bash, tar or md5sum not available");
    return;
  }
  TempDir keep;
  const std::string script = std::string(MQ_TEST_DATA) + "/../test_get_cifar.sh";
  const std::string log = keep.file("log");
  const std::string cmd =
      "MQ_GET_CIFAR_KEEP='" + keep.str() + "' bash '" + script + "' >'" + log + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  const auto out = mq::test::read_bytes(log);
  INFO(std::string(out.begin(), out.end()));
  REQUIRE(rc == 0);
  // What the script extracted is what the readers accept.
  const Dataset c10 = load_dataset("cifar10", keep.file("cifar10"), Split::train);
  CHECK(c10.size() == 10);
  CHECK(c10.labels[0] == 3);
  CHECK(c10.image(9)[3071] == 7);
  const Dataset c100 = load_dataset("cifar100", keep.file("cifar100"), Split::test);
  CHECK(c100.size() == 1);
  CHECK(c100.labels[0] == 99);
}
