#pragma once
// Whole-file reads for the readers in engine/io (.npy, .pth, checkpoints): one place that opens,
// reads and reports "<path>: cannot open the <what> (<reason>)" or a read error.
#include <string>

namespace mq {

std::string read_file(const std::string& path, const char* what);

}  // namespace mq
