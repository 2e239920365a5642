#pragma once
// The quantizer specs the tests sweep, read from the quantizer table: every row, a quantizer
// whose kernels take the requested bits at each of its bit widths, the others at their kernel
// bits. A new row is swept without a test edit.
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kernels/quantize/quantizer_table.h"
#include "models/quantize_op.h"

namespace mq::test {

inline std::vector<QuantSpec> table_specs() {
  std::vector<QuantSpec> specs;
  for (const kernels::QuantizerInfo& row : kernels::kQuantizerTable) {
    if (row.kernel_bits == kernels::kBitsAsGiven) {
      for (int b = row.min_bits; b <= row.max_bits; ++b) specs.push_back({row.kind, b});
    } else {
      specs.push_back({row.kind, row.kernel_bits});
    }
  }
  return specs;
}

// The range validation names for dorefa, e.g. "use 1..8".
inline std::string dorefa_bits_hint() {
  const kernels::QuantizerInfo& d = kernels::quantizer_info(kernels::Quantizer::dorefa);
  return fmt::format("use {}..{}", d.min_bits, d.max_bits);
}

}  // namespace mq::test
