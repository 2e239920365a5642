// Name lookups over the quantizer table (quantizer_table.h).
#include "kernels/quantize/quantizer_table.h"

#include <algorithm>
#include <cctype>

#include "kernels/base/text.h"

namespace mq::kernels {
namespace {
std::string lower(std::string_view s) { return ascii_lower(s); }

bool is_alias(std::string_view aliases, std::string_view name) {
  while (!aliases.empty()) {
    const size_t end = std::min(aliases.find(' '), aliases.size());
    if (aliases.substr(0, end) == name) return true;
    aliases.remove_prefix(std::min(end + 1, aliases.size()));
  }
  return false;
}
}  // namespace

const QuantizerInfo* find_quantizer(std::string_view text) {
  const std::string s = lower(text);
  for (const QuantizerInfo& r : kQuantizerTable)
    if (s == r.name || is_alias(r.aliases, s)) return &r;
  return nullptr;
}

std::string quantizer_names(const char* separator) {
  std::string out;
  for (const QuantizerInfo& r : kQuantizerTable) {
    if (!out.empty()) out += separator;
    out += r.name;
  }
  return out;
}

}  // namespace mq::kernels
