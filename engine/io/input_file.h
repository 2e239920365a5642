#pragma once
// Checks on the files the readers open, so that a hostile or damaged path (a directory where a
// file belongs, a symlink loop, a FIFO) is one clear mq::Error instead of a misleading "bad
// magic", a blocked read or a std::filesystem exception; and a net that turns any standard
// library exception escaping a reader into an mq::Error naming the file.
#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <string_view>

#include "kernels/base/error.h"

namespace mq {

// What stands at a path, measured against the kind of entry wanted (never throws).
struct PathCheck {
  bool missing = false;  // nothing there (or a parent is not a directory)
  std::string problem;   // "" when the path is of the wanted kind, else "not found",
                         // "is a directory, not a file", "is a symlink loop (...)", ...
  bool ok() const { return problem.empty(); }
};
PathCheck check_regular_file(const std::string& path);
PathCheck check_directory(const std::string& path);  // follows symbolic links

// Size in bytes of the regular file `path`, or an mq::Error "<path>: <what> <problem>; <hint>"
// (the hint, what to do, is left out when empty).
uint64_t input_file_size(const std::string& path, std::string_view what,
                         std::string_view hint = {});

// Refuses `path` unless it names (possibly through symlinks) an existing regular file.
// `what` names the expected content: "<path>: cannot open the <what>: <reason>".
void check_input_file(const std::string& path, std::string_view what);

// Runs `read()` (a reader of `path`); mq::Error passes through, any other exception becomes an
// mq::Error naming the file and the `what` it was reading.
template <class F>
auto reading_file(const std::string& path, std::string_view what, F&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    fail("{}: not enough memory to read the {}", path, what);
  } catch (const std::exception& e) {
    fail("{}: cannot read the {}: {}", path, what, e.what());
  }
}

}  // namespace mq
