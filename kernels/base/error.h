#pragma once
// mq::Error: every user-facing failure. Messages say what went wrong, where, and what to do.
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace mq {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace mq

// Checks a condition on user-visible input; the message is formatted only on failure.
#define MQ_CHECK(cond, ...)                 \
  do {                                      \
    if (!(cond)) ::mq::fail(__VA_ARGS__);   \
  } while (0)
