#include "data/synthetic.h"

#include <algorithm>
#include <cmath>

#include "engine/io/input_file.h"
#include "data/rng.h"
#include "engine/io/file.h"
#include "kernels/base/error.h"

namespace mq {
namespace {

struct Prototype {
  float color[4] = {};  // base intensity per channel (channels > 4 reuse them cyclically)
  bool vertical = false;  // stripes along y (vary with x) or along x (vary with y)
  int frequency = 1;      // cycles across the image
  float amplitude = 0.f;
};

Prototype prototype(int k, int classes) {
  Prototype p;
  DataRng rng(mix_keys(0x5EED5EEDull, static_cast<uint64_t>(k)));
  // Colours spread around the hue circle so neighbouring classes differ.
  const float hue = 6.2831853f * static_cast<float>(k) / static_cast<float>(classes);
  for (int c = 0; c < 4; ++c)
    p.color[c] = 0.5f + 0.22f * std::cos(hue + 2.0943951f * static_cast<float>(c)) +
                 0.05f * (rng.uniform() - 0.5f);
  p.vertical = (k % 2) == 1;
  p.frequency = 1 + (k / 2) % 4;
  p.amplitude = 0.18f + 0.04f * rng.uniform();
  return p;
}

// Approximately standard normal: sum of four uniforms, rescaled (std 1).
float normalish(DataRng& rng) {
  float s = rng.uniform() + rng.uniform() + rng.uniform() + rng.uniform() - 2.0f;
  return s * 1.7320508f;
}

}  // namespace

Dataset make_synthetic(const SyntheticOptions& o) {
  MQ_CHECK(o.classes > 0 && o.classes <= 1000, "make_synthetic: class count {} outside 1..1000",
           o.classes);
  MQ_CHECK(o.channels > 0 && o.height > 0 && o.width > 0,
           "make_synthetic: bad geometry {}x{}x{}", o.channels, o.height, o.width);
  MQ_CHECK(o.count <= kMaxSyntheticCount,
           "synthetic data: {} samples is more than the {} a synthetic split may hold; ask for "
           "fewer", o.count, kMaxSyntheticCount);
  // The whole split is allocated at once: its size is checked first, overflow-safe.
  checked_product({static_cast<int64_t>(o.count), o.channels, o.height, o.width},
                  fmt::format("synthetic data of {} samples of {}x{}x{}", o.count, o.channels,
                              o.height, o.width),
                  static_cast<int64_t>(kMaxDataFileBytes));
  MQ_CHECK(o.noise >= 0.0f, "make_synthetic: noise {} must be >= 0", o.noise);
  Dataset d;
  d.name = "synthetic";
  d.channels = o.channels;
  d.height = o.height;
  d.width = o.width;
  d.classes = o.classes;
  d.labels.resize(o.count);
  d.images.resize(o.count * d.image_bytes());

  std::vector<Prototype> protos;
  for (int k = 0; k < o.classes; ++k) protos.push_back(prototype(k, o.classes));

  const int64_t n = static_cast<int64_t>(o.count);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    DataRng rng(mix_keys(o.seed, static_cast<uint64_t>(i), 0xDA7Aull));
    const int label = static_cast<int>(rng.below(static_cast<uint64_t>(o.classes)));
    const Prototype& p = protos[label];
    d.labels[i] = label;
    const float phase = 6.2831853f * rng.uniform();
    const float contrast = 0.75f + 0.5f * rng.uniform();
    const float brightness = 0.08f * (rng.uniform() - 0.5f);
    const int extent = p.vertical ? o.width : o.height;
    const float step = 6.2831853f * static_cast<float>(p.frequency) / static_cast<float>(extent);
    uint8_t* img = d.image(static_cast<size_t>(i));
    for (int c = 0; c < o.channels; ++c) {
      // Stripes are stronger in alternate channels, so colour and pattern interact.
      const float amp = p.amplitude * contrast * (c % 2 == 0 ? 1.0f : 0.6f);
      const float base = p.color[c % 4] + brightness;
      for (int y = 0; y < o.height; ++y)
        for (int x = 0; x < o.width; ++x) {
          const float t = static_cast<float>(p.vertical ? x : y);
          float v = base + amp * std::cos(step * t + phase) + o.noise * normalish(rng);
          v = std::clamp(v, 0.0f, 1.0f);
          img[(static_cast<size_t>(c) * o.height + y) * o.width + x] =
              static_cast<uint8_t>(std::lround(v * 255.0f));
        }
    }
  }
  return d;
}

}  // namespace mq
