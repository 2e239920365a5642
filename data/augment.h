#pragma once
// Per-image augmentation on uint8 CHW images (done before normalization, so padding is black
// pixels exactly as torchvision's RandomCrop(32, padding=4) on PIL images), and normalization
// to float through a per-channel lookup table.
#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "data/rng.h"

namespace mq {

struct AugmentOptions {
  bool crop = true;  // random crop of the original size from the image zero-padded by `pad`
  int pad = 4;
  bool flip = true;  // horizontal flip with probability 1/2
};

// One draw of the random parameters: out(c, y, x) = in(c, y + dy, x + dx) (0 outside), then
// mirrored left-right when flip. dy, dx in [-pad, pad].
struct AugmentParams {
  int dy = 0;
  int dx = 0;
  bool flip = false;
};

AugmentParams draw_augment(DataRng& rng, const AugmentOptions& options);
// src and dst must not overlap.
void augment_image(const uint8_t* src, uint8_t* dst, int channels, int height, int width,
                   const AugmentParams& params);

// 256 floats per channel: table[c * 256 + v] = (v / 255 - mean[c]) / std[c].
class NormalizeTable {
 public:
  NormalizeTable(const Normalization& n, int channels);
  // Writes channels * plane floats from channels * plane bytes.
  void apply(const uint8_t* src, float* dst, size_t plane) const;
  float value(int channel, uint8_t v) const { return table_[channel * 256 + v]; }

 private:
  int channels_;
  std::vector<float> table_;
};

}  // namespace mq
