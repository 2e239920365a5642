#include "engine/io/file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "kernels/base/error.h"

namespace mq {

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  MQ_CHECK(in, "{}: cannot open the {} ({})", path, what, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  MQ_CHECK(!in.bad(), "{}: read error in the {}", path, what);
  return std::move(ss).str();
}

void check_plain_name(std::string_view name, std::string_view what) {
  MQ_CHECK(!name.empty(), "{} is empty; it must name one file or directory", what);
  const bool dots = name == "." || name == "..";
  const bool separator = name.find_first_of(std::string_view("/\\\0", 3)) != std::string_view::npos;
  MQ_CHECK(!dots && !separator,
           "{} '{}' is not a plain name: it must not be '.' or '..' nor contain '/', '\\' or NUL "
           "(it becomes a file name inside the output directory)",
           what, name);
}

int64_t checked_product(const std::vector<int64_t>& dims, std::string_view what, int64_t limit) {
  int64_t n = 1;
  for (int64_t d : dims) {
    MQ_CHECK(d >= 0, "{}: negative extent {}", what, d);
    MQ_CHECK(d == 0 || n <= limit / d, "{}: element count exceeds {}", what, limit);
    n *= d;
  }
  return n;
}

}  // namespace mq
