#pragma once
// CIFAR-10 / CIFAR-100, "binary version" (https://www.cs.toronto.edu/~kriz/cifar.html).
//   CIFAR-10:  data_batch_1..5.bin, test_batch.bin; records of 1 label byte + 3072 pixel bytes.
//   CIFAR-100: train.bin, test.bin; records of coarse label, fine label + 3072 pixel bytes
//              (the fine label, 0..99, is the one used).
// Pixels are 32x32, channel-major (1024 R, 1024 G, 1024 B), rows top to bottom. A file may hold
// any number of records; its size must be a non-zero multiple of the record size.
#include <string>
#include <vector>

#include "data/dataset.h"

namespace mq {

enum class CifarVariant { cifar10, cifar100 };

constexpr size_t kCifarImageBytes = 3 * 32 * 32;
size_t cifar_record_bytes(CifarVariant v);  // 3073 or 3074
int cifar_classes(CifarVariant v);          // 10 or 100
const char* cifar_name(CifarVariant v);     // "cifar10" / "cifar100"
// File names of a split, in load order.
std::vector<std::string> cifar_file_names(CifarVariant v, bool train);

// Reads one file. Throws mq::Error naming the file for a missing/unreadable file, a bad size
// or a label out of range.
Dataset read_cifar_file(const std::string& path, CifarVariant v);

// Reads a whole split from `dir`, or from the folder the official archive extracts to
// (dir/cifar-10-batches-bin, dir/cifar-100-binary) when the files are not directly in `dir`.
Dataset load_cifar(const std::string& dir, CifarVariant v, bool train);

}  // namespace mq
