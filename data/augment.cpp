#include "data/augment.h"

#include <algorithm>
#include <cstring>

#include "kernels/base/error.h"

namespace mq {

AugmentParams draw_augment(DataRng& rng, const AugmentOptions& o) {
  AugmentParams p;
  // Always draw the same number of values, so enabling one option does not shift the other.
  const uint64_t span = static_cast<uint64_t>(2 * std::max(o.pad, 0) + 1);
  const int dy = static_cast<int>(rng.below(span)) - std::max(o.pad, 0);
  const int dx = static_cast<int>(rng.below(span)) - std::max(o.pad, 0);
  const bool flip = rng.coin();
  if (o.crop) {
    p.dy = dy;
    p.dx = dx;
  }
  p.flip = o.flip && flip;
  return p;
}

void augment_image(const uint8_t* src, uint8_t* dst, int channels, int height, int width,
                   const AugmentParams& p) {
  // Source columns [x0, x1) of the output row come from src columns [x0 + dx, x1 + dx).
  const int x0 = std::max(0, -p.dx), x1 = std::min(width, width - p.dx);
  for (int c = 0; c < channels; ++c) {
    const uint8_t* sp = src + static_cast<size_t>(c) * height * width;
    uint8_t* dp = dst + static_cast<size_t>(c) * height * width;
    for (int y = 0; y < height; ++y) {
      uint8_t* row = dp + static_cast<size_t>(y) * width;
      const int sy = y + p.dy;
      if (sy < 0 || sy >= height || x0 >= x1) {
        std::memset(row, 0, width);
        continue;
      }
      const uint8_t* srow = sp + static_cast<size_t>(sy) * width;
      std::memset(row, 0, x0);
      std::memcpy(row + x0, srow + x0 + p.dx, x1 - x0);
      std::memset(row + x1, 0, width - x1);
      if (p.flip) std::reverse(row, row + width);  // out(y, x) = crop(y, width - 1 - x)
    }
  }
}

NormalizeTable::NormalizeTable(const Normalization& n, int channels)
    : channels_(channels), table_(static_cast<size_t>(channels) * 256) {
  n.check(channels);
  for (int c = 0; c < channels; ++c)
    for (int v = 0; v < 256; ++v) {
      const float x = static_cast<float>(v) / 255.0f;
      table_[c * 256 + v] = n.empty() ? x : (x - n.mean[c]) / n.std[c];
    }
}

void NormalizeTable::apply(const uint8_t* src, float* dst, size_t plane) const {
  for (int c = 0; c < channels_; ++c) {
    const float* t = table_.data() + c * 256;
    const uint8_t* s = src + c * plane;
    float* d = dst + c * plane;
    for (size_t i = 0; i < plane; ++i) d[i] = t[s[i]];
  }
}

}  // namespace mq
