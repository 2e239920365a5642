#pragma once
// Text typed by users: names matched case-insensitively (quantizers, models, datasets), with one
// ASCII lowercasing for all of them; numbers read whole.
#include <cctype>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace mq {

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// `text` read whole as an int or a double (as std::stoi / std::stod read it): false, never an
// exception, when it is empty, out of range or has anything after the number.
template <class T>
bool parse_whole(const std::string& text, T& out) {
  static_assert(std::is_same_v<T, int> || std::is_same_v<T, double>);
  size_t used = 0;
  try {
    if constexpr (std::is_same_v<T, int>) out = std::stoi(text, &used);
    else out = std::stod(text, &used);
  } catch (const std::logic_error&) {  // invalid_argument, out_of_range
    return false;
  }
  return used == text.size() && used > 0;
}

}  // namespace mq
