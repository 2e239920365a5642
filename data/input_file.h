#pragma once
// The first check of every reader that takes a path from the user or from a file: the path names
// a regular file (or a directory). The messages say what is there instead (nothing, a directory,
// a symbolic-link loop, a device) instead of letting std::filesystem throw or an ifstream
// "open" a directory and read nothing.
#include <cstdint>
#include <string>
#include <string_view>

namespace mq {

// The largest dataset file, or decompressed payload, the readers accept (4 GiB: CIFAR-100's
// training file is 154 MB, Fashion-MNIST's 47 MB). A bound on what one file can make mq
// allocate, whatever its header claims.
constexpr uint64_t kMaxDataFileBytes = uint64_t{4} << 30;

// What stands at a path, measured against the kind of entry wanted.
struct PathCheck {
  bool missing = false;  // nothing there (or a parent is not a directory)
  std::string problem;   // "" when the path is of the wanted kind, else "not found",
                         // "is a directory, not a file", "is a symbolic-link loop (...)", ...
  bool ok() const { return problem.empty(); }
};
PathCheck check_regular_file(const std::string& path);
PathCheck check_directory(const std::string& path);  // follows symbolic links

// Size in bytes of the regular file `path`, or an mq::Error "<path>: <what> <problem>; <hint>"
// (the hint, what to do, is left out when empty).
uint64_t input_file_size(const std::string& path, std::string_view what,
                         std::string_view hint = {});

}  // namespace mq
