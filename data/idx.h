#pragma once
// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed:
//   bytes 0-1: 0, byte 2: element type (only 0x08, unsigned byte, is supported),
//   byte 3: number of dimensions, then one big-endian uint32 per dimension, then the data.
// Gzip is detected from the content (1f 8b), not the file name.
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace mq {

struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;  // product(dims) bytes
};

// Reads a whole IDX file; throws mq::Error naming the file for a missing file, corrupt or
// truncated gzip stream, bad magic, unsupported element type, or data size not matching dims.
IdxArray read_idx(const std::string& path);

// Images (N x H x W, idx3) and labels (N, idx1) as a 1-channel dataset. Images are zero-padded
// (centered) to pad_to x pad_to when pad_to > 0 (Fashion-MNIST 28x28 -> 32x32). Checks the
// counts match and every label is < classes.
Dataset load_idx(const std::string& images_path, const std::string& labels_path, int classes,
                 int pad_to, const std::string& name);

// Fashion-MNIST from `dir` (train-* or t10k-* files, plain or .gz), padded to 32x32.
// An empty dir means Debian's /usr/share/datasets/fashion-mnist.
constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";
Dataset load_fashion_mnist(const std::string& dir, bool train);

}  // namespace mq
