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

}  // namespace mq
