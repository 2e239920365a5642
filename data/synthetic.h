#pragma once
// A seeded synthetic image-classification dataset for tests and the default demo.
// Each class has a fixed prototype (independent of the seed, so train and test splits drawn with
// different seeds share it): a base colour per channel plus an axis-aligned stripe pattern of a
// class-specific frequency and direction. Samples add a random phase, contrast and brightness
// jitter and pixel noise. Stripes are axis-aligned, so horizontal flips and crops keep the class
// recognisable; a small CNN learns it in an epoch or two.
#include <cstdint>

#include "data/dataset.h"

namespace mq {

// The most samples one synthetic split may hold: 1,000,000 images of 3x32x32 are 3 GB in memory
// (20x CIFAR-10's training set). Larger requests are refused instead of failing to allocate.
constexpr size_t kMaxSyntheticCount = 1'000'000;

struct SyntheticOptions {
  size_t count = 1024;
  int classes = 10;
  int channels = 3;
  int height = 32;
  int width = 32;
  uint64_t seed = 0;
  float noise = 0.08f;  // std of the pixel noise, in [0, 1] intensity units
};

// Throws mq::Error for a count above kMaxSyntheticCount or a split of more than
// kMaxDataFileBytes (data/dataset.h).
Dataset make_synthetic(const SyntheticOptions& options);

}  // namespace mq
