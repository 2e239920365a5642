#include "engine/io/atomic_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "kernels/base/error.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)  // linux/fs.h
#endif

namespace mq {
namespace {
namespace fs = std::filesystem;

// The target as an absolute path without a trailing '/', symlinks resolved; `exists` tells
// whether it is there (then it is a directory). `shown` is the path as the user wrote it.
struct Target {
  fs::path path;
  bool exists = false;
};

Target resolve(const std::string& shown, std::string_view what) {
  MQ_CHECK(!shown.empty(), "the directory for the {} is an empty path", what);
  std::error_code ec;
  fs::path p = fs::absolute(shown, ec).lexically_normal();
  MQ_CHECK(!ec, "{}: cannot resolve the path: {}", shown, ec.message());
  if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();  // "out/" -> "out"
  MQ_CHECK(p.has_filename() && p.filename() != ".." && p != p.root_path(),
           "{}: cannot hold the {}: it must name a directory below an existing parent", shown,
           what);
  fs::file_status link = fs::symlink_status(p, ec);
  if (ec && link.type() != fs::file_type::not_found)
    fail("{}: cannot use it for the {}: {}", shown, what, ec.message());
  if (link.type() == fs::file_type::symlink) {
    fs::path real = fs::canonical(p, ec);
    if (ec)
      fail(
          "{}: cannot use it for the {}: a symlink that does not resolve ({}: a loop, or a "
          "missing target)",
          shown, what, ec.message());
    p = real;
  }
  fs::file_status st = fs::status(p, ec);
  if (ec && st.type() != fs::file_type::not_found)
    fail("{}: cannot use it for the {}: {}", shown, what, ec.message());
  Target t{p, fs::exists(st)};
  MQ_CHECK(!t.exists || fs::is_directory(st),
           "{}: exists and is not a directory; refusing to replace it with the {} (remove it or "
           "choose another path)",
           shown, what);
  return t;
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {  // durability only: a failure here loses nothing already renamed
    ::fsync(fd);
    ::close(fd);
  }
}

// Atomically exchanges two existing paths; false (errno set) when the file system or kernel
// cannot (then the caller falls back to two renames).
bool exchange(const fs::path& a, const fs::path& b) {
#ifdef SYS_renameat2
  return ::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0;
#else
  errno = ENOSYS;
  return false;
#endif
}

std::atomic<uint64_t> g_counter{0};

fs::path sibling(const fs::path& p, const char* role) {
  return p.parent_path() / fmt::format(".{}.{}.{}.{}", p.filename().string(), role,
                                       static_cast<long>(::getpid()), g_counter++);
}

void write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed: {}", path, std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Moves `fresh` to `p`, the old directory at `p` (if any) to `old`; on failure `p` is unchanged.
void swap_in(const fs::path& fresh, const fs::path& p, bool exists, const std::string& shown) {
  if (!exists) {
    if (::rename(fresh.c_str(), p.c_str()) != 0)
      fail("{}: cannot move the new directory into place: {}", shown, std::strerror(errno));
    return;
  }
  if (exchange(fresh, p)) return;  // `fresh` now holds the old content
  if (errno != EINVAL && errno != ENOSYS && errno != EPERM)
    fail("{}: cannot swap the new directory into place: {}", shown, std::strerror(errno));
  // No RENAME_EXCHANGE here: old aside, new in, old back if that fails. The old state stays
  // whole on disk throughout.
  fs::path aside = sibling(p, "old");
  if (::rename(p.c_str(), aside.c_str()) != 0)
    fail("{}: cannot move the old directory aside: {}", shown, std::strerror(errno));
  if (::rename(fresh.c_str(), p.c_str()) != 0) {
    int err = errno;
    ::rename(aside.c_str(), p.c_str());
    fail("{}: cannot move the new directory into place: {}", shown, std::strerror(err));
  }
  if (::rename(aside.c_str(), fresh.c_str()) != 0) {  // for the caller's cleanup
    std::error_code ec;
    fs::remove_all(aside, ec);
  }
}

}  // namespace

void write_new_file(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail("{}: cannot create the file: {}", path, std::strerror(errno));
  try {
    write_all(fd, bytes.data(), bytes.size(), path);
    if (::fsync(fd) != 0) fail("{}: fsync failed: {}", path, std::strerror(errno));
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) fail("{}: close failed (disk full?): {}", path, std::strerror(errno));
}

void replace_directory(
    const std::string& target, std::string_view what,
    const std::function<void(const std::string& old_dir)>& check_old,
    const std::function<void(const std::string& new_dir, const std::string& old_dir)>& fill) {
  const Target t = resolve(target, what);
  const fs::path parent = t.path.parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec)
    fail("{}: cannot create the parent directory {}: {}", target, parent.string(), ec.message());
  if (t.exists && check_old) check_old(t.path.string());

  const fs::path fresh = sibling(t.path, "new");
  if (::mkdir(fresh.c_str(), 0777) != 0)
    fail("{}: cannot write the {}: creating {} failed: {} (is {} writable?)", target, what,
         fresh.string(), std::strerror(errno), parent.string());
  try {
    fill(fresh.string(), t.exists ? t.path.string() : std::string());
    fsync_dir(fresh);
    swap_in(fresh, t.path, t.exists, target);
  } catch (...) {
    fs::remove_all(fresh, ec);
    throw;
  }
  fsync_dir(parent);
  if (t.exists) fs::remove_all(fresh, ec);  // the old content; the new state is in place
}

void check_directory_target(const std::string& target, std::string_view what) {
  const Target t = resolve(target, what);
  // The nearest existing ancestor must be a directory we can write (the new directory and its
  // temporary sibling are created there).
  fs::path dir = t.path.parent_path();
  std::error_code ec;
  while (!fs::exists(dir, ec) && dir.has_relative_path()) dir = dir.parent_path();
  MQ_CHECK(fs::is_directory(dir, ec), "{}: cannot hold the {}: {} is not a directory", target, what,
           dir.string());
  MQ_CHECK(::access(dir.c_str(), W_OK | X_OK) == 0,
           "{}: cannot hold the {}: {} is not writable ({})", target, what, dir.string(),
           std::strerror(errno));
}

}  // namespace mq
