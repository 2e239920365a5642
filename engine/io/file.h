#pragma once
// Whole-file reads for the readers (.npy, .pth, checkpoints, CIFAR, IDX): one place that opens,
// reads and reports "<path>: cannot open the <what> (<reason>)" or a read error. Also the checks
// every reader and writer shares: names that become file names, and overflow-safe sizes.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mq {

std::string read_file(const std::string& path, const char* what);

// A name that comes from a file or a flag and becomes one path component (a state-dict key, a
// golden case name, --run): refused unless non-empty, not "." or "..", without '/', '\\' or NUL.
// `what` names its origin in the message, e.g. "state-dict key" or "--run".
void check_plain_name(std::string_view name, std::string_view what);

// Product of non-negative extents, refused (naming `what`) when one is negative or the product
// exceeds `limit` (default: what fits in int64). Never overflows.
int64_t checked_product(const std::vector<int64_t>& dims, std::string_view what,
                        int64_t limit = INT64_MAX);

}  // namespace mq
