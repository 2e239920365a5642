#pragma once
// Dataset: a whole split in memory as uint8 images (N x C x H x W, CHW per image) and int64
// labels. Everything in data/ produces or consumes this; the loader turns it into Tensors.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mq {

// The largest dataset file, or decompressed payload, the readers accept (4 GiB: CIFAR-100's
// training file is 154 MB, Fashion-MNIST's 47 MB). A bound on what one file can make mq
// allocate, whatever its header claims.
constexpr uint64_t kMaxDataFileBytes = uint64_t{4} << 30;

struct Dataset {
  std::vector<uint8_t> images;  // size() * channels * height * width bytes
  std::vector<int64_t> labels;  // one per image, in [0, classes)
  int channels = 3;
  int height = 32;
  int width = 32;
  int classes = 10;
  std::string name;  // "cifar10", "fashion-mnist", "synthetic", ...

  size_t size() const { return labels.size(); }
  size_t image_bytes() const {
    return static_cast<size_t>(channels) * static_cast<size_t>(height) *
           static_cast<size_t>(width);
  }
  const uint8_t* image(size_t i) const { return images.data() + i * image_bytes(); }
  uint8_t* image(size_t i) { return images.data() + i * image_bytes(); }

  // Throws mq::Error if the dimensions, buffer sizes or label range are inconsistent.
  void validate() const;
  // Appends another dataset with the same geometry and class count.
  void append(const Dataset& other);
  // Keeps the first n samples (all of them when n >= size()): quick runs on a subset.
  void keep_first(size_t n);
};

// Per-channel normalization applied by the loader: out = (pixel / 255 - mean[c]) / std[c].
// Empty mean/std means "scale to [0, 1] only".
struct Normalization {
  std::vector<float> mean;
  std::vector<float> std;

  static Normalization none() { return {}; }
  static Normalization cifar();          // mean 0.4914 0.4822 0.4465, std 0.2023 0.1994 0.2010
  static Normalization fashion_mnist();  // mean 0.2860, std 0.3530
  static Normalization synthetic(int channels);  // mean 0.5, std 0.25 per channel
  bool empty() const { return mean.empty(); }
  // Throws unless mean/std are empty or both hold `channels` values with std > 0.
  void check(int channels) const;
};

}  // namespace mq
