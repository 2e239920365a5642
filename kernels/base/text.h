#pragma once
// Names typed by users are matched case-insensitively (quantizers, models, datasets): one
// ASCII lowercasing for all of them.
#include <cctype>
#include <string>
#include <string_view>

namespace mq {

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace mq
