#include "engine/io/input_file.h"

#include <filesystem>
#include <system_error>

namespace fs = std::filesystem;

namespace mq {
namespace {

// The status of `path` (following links) against the wanted type, without throwing.
PathCheck check_path(const std::string& path, fs::file_type wanted) {
  PathCheck c;
  if (path.empty()) {
    c.problem = "is an empty path";
    return c;
  }
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
    c.problem = ec == std::errc::too_many_symbolic_link_levels
                    ? "is a symlink loop (too many levels of symbolic links)"
                    : "cannot be examined (" + ec.message() + ")";
    return c;
  }
  if (st.type() == wanted) return c;
  switch (st.type()) {
    case fs::file_type::not_found:
    case fs::file_type::none: {
      c.missing = true;
      std::error_code lec;
      c.problem = fs::is_symlink(fs::symlink_status(path, lec))
                      ? "is a dangling symlink (its target does not exist)"
                      : "not found";
      break;
    }
    case fs::file_type::directory: c.problem = "is a directory, not a file"; break;
    case fs::file_type::regular: c.problem = "is a file, not a directory"; break;
    default: c.problem = "is not a regular file (a device, FIFO or socket)"; break;
  }
  return c;
}

}  // namespace

PathCheck check_regular_file(const std::string& path) {
  return check_path(path, fs::file_type::regular);
}

PathCheck check_directory(const std::string& path) {
  return check_path(path, fs::file_type::directory);
}

uint64_t input_file_size(const std::string& path, std::string_view what, std::string_view hint) {
  const PathCheck c = check_regular_file(path);
  MQ_CHECK(c.ok(), "{}: {} {}{}{}", path, what, c.problem, hint.empty() ? "" : "; ", hint);
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  MQ_CHECK(!ec, "{}: cannot read the size of the {} ({})", path, what, ec.message());
  return static_cast<uint64_t>(size);
}

void check_input_file(const std::string& path, std::string_view what) {
  const PathCheck c = check_regular_file(path);
  MQ_CHECK(c.ok(), "{}: cannot open the {} ({})", path, what, c.problem);
}

}  // namespace mq
