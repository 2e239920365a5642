#include "engine/io/input_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace mq {

void check_input_file(const std::string& path, std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    struct stat link {};
    if (err == ELOOP)
      fail("{}: cannot open the {}: a symlink loop (too many levels of symbolic links)", path,
           what);
    if (err == ENOENT && ::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode))
      fail("{}: cannot open the {}: a dangling symlink (its target does not exist)", path, what);
    fail("{}: cannot open the {} ({})", path, what, std::strerror(err));
  }
  if (S_ISDIR(st.st_mode))
    fail("{}: cannot open the {}: it is a directory, where a file was expected", path, what);
  if (!S_ISREG(st.st_mode))
    fail("{}: cannot open the {}: not a regular file (a device, FIFO or socket)", path, what);
}

}  // namespace mq
