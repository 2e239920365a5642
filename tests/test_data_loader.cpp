// Augmentation, normalization and the DataLoader (batching, shuffling, determinism, threading).
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "data/augment.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "kernels/base/error.h"

using namespace mq;

namespace {

Dataset tiny(size_t n, uint64_t seed = 1, int channels = 3) {
  SyntheticOptions o;
  o.count = n;
  o.seed = seed;
  o.channels = channels;
  return make_synthetic(o);
}

std::vector<uint8_t> ramp(int c, int h, int w) {
  std::vector<uint8_t> v(static_cast<size_t>(c) * h * w);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(1 + i % 254);
  return v;
}

bool same(const Batch& a, const Batch& b) {
  return a.indices == b.indices && a.images.to_vector<float>() == b.images.to_vector<float>() &&
         a.labels.to_vector<int64_t>() == b.labels.to_vector<int64_t>();
}

std::vector<Batch> epoch_batches(DataLoader& l, int epoch) {
  std::vector<Batch> out;
  l.start_epoch(epoch);
  for (Batch b; l.next(b);) out.push_back(b);
  return out;
}

}  // namespace

TEST_CASE("crop keeps the content shifted, padding is zero", "[data]") {
  const int C = 2, H = 6, W = 5;
  const auto src = ramp(C, H, W);
  std::vector<uint8_t> dst(src.size());
  for (int dy = -4; dy <= 4; ++dy)
    for (int dx = -4; dx <= 4; ++dx) {
      augment_image(src.data(), dst.data(), C, H, W, {dy, dx, false});
      for (int c = 0; c < C; ++c)
        for (int y = 0; y < H; ++y)
          for (int x = 0; x < W; ++x) {
            const int sy = y + dy, sx = x + dx;
            const bool in = sy >= 0 && sy < H && sx >= 0 && sx < W;
            REQUIRE(dst[(c * H + y) * W + x] == (in ? src[(c * H + sy) * W + sx] : 0));
          }
    }
  augment_image(src.data(), dst.data(), C, H, W, {});
  CHECK(dst == src);
}

TEST_CASE("flip mirrors left-right, after the crop", "[data]") {
  const int C = 3, H = 4, W = 7;
  const auto src = ramp(C, H, W);
  std::vector<uint8_t> flipped(src.size()), twice(src.size()), crop(src.size()), both(src.size());
  augment_image(src.data(), flipped.data(), C, H, W, {0, 0, true});
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x)
        REQUIRE(flipped[(c * H + y) * W + x] == src[(c * H + y) * W + (W - 1 - x)]);
  augment_image(flipped.data(), twice.data(), C, H, W, {0, 0, true});
  CHECK(twice == src);
  augment_image(src.data(), crop.data(), C, H, W, {1, -2, false});
  augment_image(src.data(), both.data(), C, H, W, {1, -2, true});
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x)
        REQUIRE(both[(c * H + y) * W + x] == crop[(c * H + y) * W + (W - 1 - x)]);
}

TEST_CASE("augmentation draws cover every offset and flip half the time", "[data]") {
  DataRng rng(3);
  std::set<std::pair<int, int>> offsets;
  int flips = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const auto p = draw_augment(rng, {});
    REQUIRE(std::abs(p.dy) <= 4);
    REQUIRE(std::abs(p.dx) <= 4);
    offsets.insert({p.dy, p.dx});
    flips += p.flip;
  }
  CHECK(offsets.size() == 81);
  CHECK(flips > 0.45 * n);
  CHECK(flips < 0.55 * n);
  const auto p = draw_augment(rng, {.crop = false, .pad = 4, .flip = false});
  CHECK((p.dy == 0 && p.dx == 0 && !p.flip));
}

TEST_CASE("normalization table", "[data]") {
  const NormalizeTable t(Normalization::cifar(), 3);
  CHECK(t.value(0, 0) == Approx(-0.4914 / 0.2023));
  CHECK(t.value(2, 255) == Approx((1.0 - 0.4465) / 0.2010));
  const NormalizeTable plain(Normalization::none(), 1);
  CHECK(plain.value(0, 51) == Approx(0.2));
  CHECK_THROWS_AS(NormalizeTable(Normalization::cifar(), 1), Error);
  CHECK_THROWS_AS(NormalizeTable(Normalization{{0.5f}, {0.0f}}, 1), Error);
}

TEST_CASE("loader batches: shapes, dtypes, last partial batch, drop_last", "[data]") {
  const Dataset d = tiny(10);
  for (bool background : {false, true}) {
    DataLoader l(d, {.batch = 4, .shuffle = false, .background = background});
    CHECK(l.batches_per_epoch() == 3);
    std::vector<Batch> bs;
    for (Batch b; l.next(b);) bs.push_back(b);  // no start_epoch: epoch 0
    REQUIRE(bs.size() == 3);
    CHECK(bs[2].size() == 2);
    CHECK(bs[2].images.shape() == Shape{2, 3, 32, 32});
    CHECK(bs[2].images.dtype() == DType::f32);
    CHECK(bs[2].labels.shape() == Shape{2});
    CHECK(bs[2].labels.dtype() == DType::i64);
    CHECK(bs[2].indices == std::vector<size_t>{8, 9});
    CHECK(bs[2].labels.to_vector<int64_t>() == std::vector<int64_t>{d.labels[8], d.labels[9]});
    // No augmentation, no normalization: pixels / 255.
    const auto px = bs[1].images.to_vector<float>();
    for (size_t k = 0; k < d.image_bytes(); ++k)
      REQUIRE(px[k] == static_cast<float>(d.image(4)[k]) / 255.0f);
    Batch keep = bs[0];
    CHECK_FALSE(l.next(keep));  // exhausted: stays false and leaves the batch alone
    CHECK_FALSE(l.next(keep));
    CHECK(keep.index == 0);
  }
  DataLoader dl(d, {.batch = 4, .drop_last = true});
  CHECK(dl.batches_per_epoch() == 2);
  CHECK(epoch_batches(dl, 0).size() == 2);
  CHECK_THROWS_AS(DataLoader(d, {.batch = 11, .drop_last = true}), Error);
  CHECK_THROWS_AS(DataLoader(d, {.batch = 0}), Error);
}

TEST_CASE("loader shuffles per epoch and covers every sample once", "[data]") {
  const Dataset d = tiny(50);
  DataLoader l(d, {.batch = 8, .seed = 5});
  std::vector<std::vector<size_t>> orders;
  for (int e = 0; e < 3; ++e) {
    std::vector<size_t> order;
    for (const auto& b : epoch_batches(l, e)) order.insert(order.end(), b.indices.begin(), b.indices.end());
    auto sorted = order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<size_t> all(50);
    for (size_t i = 0; i < 50; ++i) all[i] = i;
    REQUIRE(sorted == all);
    orders.push_back(order);
  }
  CHECK(orders[0] != orders[1]);
  CHECK(orders[1] != orders[2]);
}

TEST_CASE("loader is deterministic: same seed, same batches, whatever the threading", "[data]") {
  const Dataset d = tiny(37);
  const LoaderOptions base{.batch = 8, .augment = true, .seed = 42,
                           .normalization = Normalization::cifar()};
  LoaderOptions sync = base, deep = base, other = base;
  sync.background = false;
  deep.prefetch = 3;
  other.seed = 43;
  DataLoader a(d, base), b(d, sync), c(d, deep), x(d, other);
  for (int e = 0; e < 2; ++e) {
    const auto ba = epoch_batches(a, e), bb = epoch_batches(b, e), bc = epoch_batches(c, e),
               bx = epoch_batches(x, e);
    REQUIRE(ba.size() == 5);
    REQUIRE(bb.size() == 5);
    REQUIRE(bc.size() == 5);
    for (size_t i = 0; i < ba.size(); ++i) {
      CHECK(same(ba[i], bb[i]));
      CHECK(same(ba[i], bc[i]));
      CHECK(same(ba[i], a.make_batch(e, i)));
      CHECK_FALSE(same(ba[i], bx[i]));
    }
  }
  // Augmentation differs between epochs for the same sample (no shuffle to line them up).
  LoaderOptions fixed = base;
  fixed.shuffle = false;
  fixed.batch = 37;
  DataLoader f(d, fixed);
  CHECK(f.make_batch(0, 0).images.to_vector<float>() != f.make_batch(1, 0).images.to_vector<float>());
  CHECK(f.make_batch(1, 0).images.to_vector<float>() == f.make_batch(1, 0).images.to_vector<float>());
}

TEST_CASE("loader restarts mid-epoch and shuts down cleanly mid-epoch", "[data]") {
  const Dataset d = tiny(300);
  const LoaderOptions o{.batch = 16, .augment = true, .seed = 7, .prefetch = 2};
  {
    DataLoader l(d, o);
    l.start_epoch(3);
    Batch b;
    REQUIRE(l.next(b));
    REQUIRE(l.next(b));
    CHECK(b.index == 1);
    l.start_epoch(3);  // restart: batch 0 again, identical to a fresh loader's
    REQUIRE(l.next(b));
    CHECK(b.index == 0);
    CHECK(same(b, l.make_batch(3, 0)));
    l.start_epoch(4);
    REQUIRE(l.next(b));
    CHECK(b.epoch == 4);
  }  // destroyed with the worker holding prepared batches
  for (int i = 0; i < 20; ++i) {
    DataLoader l(d, o);  // destroyed before or while the first batch is being prepared
    if (i % 2) l.start_epoch(0);
  }
  SUCCEED("no hang, no crash");
}

TEST_CASE("loader on 1-channel data", "[data]") {
  const Dataset d = tiny(9, 2, 1);
  DataLoader l(d, {.batch = 4, .normalization = Normalization::fashion_mnist()});
  CHECK(l.batches_per_epoch() == 3);
  Batch b;
  REQUIRE(l.next(b));
  CHECK(b.images.shape() == Shape{4, 1, 32, 32});
  const float v = b.images.to_vector<float>()[0];
  const float raw = d.image(b.indices[0])[0];
  CHECK(v == Approx((raw / 255.0f - 0.2860f) / 0.3530f));
}

TEST_CASE("loader recycles batch buffers only once they are released", "[data]") {
  const Dataset d = tiny(64);
  for (bool background : {false, true}) {
    LoaderOptions o{.batch = 8, .augment = true, .seed = 9};
    o.background = background;
    DataLoader l(d, o);
    l.start_epoch(0);
    Batch kept;
    REQUIRE(l.next(kept));
    const Tensor view = kept.images.reshape({-1});  // a view alone also pins the buffer
    const auto before = view.to_vector<float>();
    kept.images = Tensor();
    const void* recycled = nullptr;
    for (int e = 0; e < 3; ++e) {
      l.start_epoch(e);
      for (Batch b; l.next(b);) {
        CHECK(b.images.raw_data() != view.raw_data());
        if (e == 2) recycled = b.images.raw_data();
      }
    }
    CHECK(view.to_vector<float>() == before);
    CHECK(recycled != nullptr);
    Batch b;
    l.start_epoch(5);
    REQUIRE(l.next(b));
    CHECK(b.images.to_vector<float>() == l.make_batch(5, 0).images.to_vector<float>());
    CHECK_FALSE(b.images.requires_grad());
  }
}
