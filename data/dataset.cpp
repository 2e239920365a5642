#include "data/dataset.h"

#include "kernels/base/error.h"

namespace mq {

void Dataset::validate() const {
  MQ_CHECK(channels > 0 && height > 0 && width > 0,
           "dataset '{}': bad image geometry {}x{}x{} (channels x height x width must be positive)",
           name, channels, height, width);
  MQ_CHECK(classes > 0, "dataset '{}': class count {} must be positive", name, classes);
  MQ_CHECK(images.size() == labels.size() * image_bytes(),
           "dataset '{}': {} image bytes for {} labels of {} bytes each (buffers out of step)", name,
           images.size(), labels.size(), image_bytes());
  for (size_t i = 0; i < labels.size(); ++i)
    MQ_CHECK(labels[i] >= 0 && labels[i] < classes,
             "dataset '{}': label {} of sample {} outside [0, {})", name, labels[i], i, classes);
}

void Dataset::append(const Dataset& other) {
  MQ_CHECK(other.channels == channels && other.height == height && other.width == width &&
               other.classes == classes,
           "dataset '{}': cannot append '{}' with geometry {}x{}x{} / {} classes to {}x{}x{} / {} "
           "classes",
           name, other.name, other.channels, other.height, other.width, other.classes, channels,
           height, width, classes);
  images.insert(images.end(), other.images.begin(), other.images.end());
  labels.insert(labels.end(), other.labels.begin(), other.labels.end());
}

Normalization Normalization::cifar() {
  return {{0.4914f, 0.4822f, 0.4465f}, {0.2023f, 0.1994f, 0.2010f}};
}
Normalization Normalization::fashion_mnist() { return {{0.2860f}, {0.3530f}}; }
Normalization Normalization::synthetic(int channels) {
  return {std::vector<float>(channels, 0.5f), std::vector<float>(channels, 0.25f)};
}

void Normalization::check(int channels) const {
  if (mean.empty() && std.empty()) return;
  MQ_CHECK(mean.size() == static_cast<size_t>(channels) && std.size() == mean.size(),
           "normalization has {} means and {} stds for {}-channel images; give one per channel",
           mean.size(), std.size(), channels);
  for (float s : std) MQ_CHECK(s > 0.0f, "normalization std {} must be positive", s);
}

void Dataset::keep_first(size_t n) {
  if (n >= size()) return;
  labels.resize(n);
  images.resize(n * image_bytes());
}

}  // namespace mq
