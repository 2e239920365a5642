#pragma once
// Writers of the dataset file formats mq reads (data/cifar.h, data/idx.h), for test fixtures:
// the product only reads these files.
#include <string>

#include "data/cifar.h"
#include "data/idx.h"

namespace mq::test {

// Writes `d` (3x32x32 images, labels < 10 or < 100) in the binary format of `v`. For CIFAR-100
// the coarse label byte is written as fine / 5 (the reader ignores it).
void write_cifar_file(const std::string& path, const Dataset& d, CifarVariant v);

// Writes an unsigned-byte IDX file (gzip-compressed when `gzip`).
void write_idx(const std::string& path, const IdxArray& array, bool gzip);

}  // namespace mq::test
