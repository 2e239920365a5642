#pragma once
// Whole-file reads for the readers (.npy, .pth, checkpoints, CIFAR, IDX): one place that opens,
// reads and reports "<path>: cannot open the <what> (<reason>)" or a read error.
#include <string>

namespace mq {

std::string read_file(const std::string& path, const char* what);

}  // namespace mq
