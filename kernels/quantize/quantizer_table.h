#pragma once
// One row per weight quantizer: everything mq knows about a quantizer besides its math
// (quantize_math.h) and its kernels (quantize_cpu.cpp, quantize.cu). The CLIs (mqtrain -q/-bw,
// mqbench --quantizer/--bits), validation (models/quantize_op.cpp, check_quantize_args), the
// benchmark's byte counts and the tests read it. Adding a quantizer: docs/extending.md.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kernels/quantize/quantize_math.h"

namespace mq::kernels {

// kernel_bits of a quantizer that runs with the bits it is given (dorefa).
inline constexpr int kBitsAsGiven = 0;

// Floats read plus written per weight element by each op, counting every pass over memory
// (mqbench's GB/s).
struct QuantizerTraffic {
  int forward, backward, calibration;
};

struct QuantizerInfo {
  Quantizer kind;
  const char* name;         // the canonical spelling (CLIs, logs, checkpoints)
  const char* aliases;      // further accepted spellings, space-separated; case never matters
  int min_bits, max_bits;   // the bit widths a run may ask for (-bw)
  int kernel_bits;          // the bits the kernels run with, or kBitsAsGiven
  bool per_channel;         // one scale per output channel (a weight's dim 0), else per tensor
  bool w_tilde_is_w;        // A(W) = W: W~ shares W's storage, no copy is written
  int workspace_doubles;    // CUDA workspace of the forward and calibration, in doubles...
  bool workspace_per_channel;  // ...per channel (else in all)
  QuantizerTraffic traffic;
};

// The rows, in the enum's order. bwn, bwn-f and ternary accept any -bw of 1..8 and ignore it,
// as the reference ignores -bw for BWN.
inline constexpr std::array<QuantizerInfo, 4> kQuantizerTable{{
    // kind, name, aliases, min/max bits, kernel bits, per channel, W~ = W,
    // workspace doubles (per channel), traffic {forward, backward, calibration}
    {Quantizer::dorefa, "dorefa", "", kMinDorefaBits, kMaxDorefaBits, kBitsAsGiven, false, false,
     1, false, {4, 3, 3}},
    {Quantizer::bwn, "bwn", "", 1, kMaxDorefaBits, 1, false, true, 1, true, {3, 3, 1}},
    {Quantizer::bwn_f, "bwn-f", "bwn_f bwnf", 1, kMaxDorefaBits, 1, true, true, 1, true,
     {3, 3, 1}},
    {Quantizer::ternary, "ternary", "", 1, kMaxDorefaBits, 2, false, true, 3, false, {4, 3, 1}},
}};

// Compile-time check that every quantizer has its row. The switch names every enumerator and
// has no default; the build makes -Wswitch an error, so a new enumerator fails to compile here
// until it is listed, and the static_assert below then fails until its row is in the table.
constexpr bool table_has_row(Quantizer q) {
  for (const QuantizerInfo& row : kQuantizerTable)
    if (row.kind == q) return true;
  return false;
}
constexpr bool every_quantizer_has_a_row() {
  for (int i = 0;; ++i) {
    const auto q = static_cast<Quantizer>(i);
    switch (q) {
      case Quantizer::dorefa:
      case Quantizer::bwn:
      case Quantizer::bwn_f:
      case Quantizer::ternary:
        if (!table_has_row(q)) return false;
        continue;
    }
    return true;  // i is past the last enumerator
  }
}
constexpr bool rows_in_enum_order() {
  for (size_t i = 0; i < kQuantizerTable.size(); ++i)
    if (static_cast<size_t>(kQuantizerTable[i].kind) != i) return false;
  return true;
}
static_assert(every_quantizer_has_a_row(), "a Quantizer has no row in kQuantizerTable");
static_assert(rows_in_enum_order(), "kQuantizerTable's rows must follow the Quantizer enum");

constexpr const QuantizerInfo& quantizer_info(Quantizer q) {
  return kQuantizerTable[static_cast<size_t>(q)];
}
constexpr int kernel_bits_for(Quantizer q, int bits) {
  return quantizer_info(q).kernel_bits == kBitsAsGiven ? bits : quantizer_info(q).kernel_bits;
}
inline size_t workspace_bytes_for(Quantizer q, int64_t channels) {
  const QuantizerInfo& r = quantizer_info(q);
  return static_cast<size_t>(r.workspace_doubles) *
         static_cast<size_t>(r.workspace_per_channel ? channels : 1) * sizeof(double);
}
// The widest bit range any quantizer accepts (the CLIs' flag ranges).
constexpr int table_min_bits() {
  int b = kQuantizerTable[0].min_bits;
  for (const QuantizerInfo& r : kQuantizerTable) b = r.min_bits < b ? r.min_bits : b;
  return b;
}
constexpr int table_max_bits() {
  int b = kQuantizerTable[0].max_bits;
  for (const QuantizerInfo& r : kQuantizerTable) b = r.max_bits > b ? r.max_bits : b;
  return b;
}

// The quantizer named `text` (its name or an alias, any case), or null.
const QuantizerInfo* find_quantizer(std::string_view text);
// "dorefa, bwn, bwn-f, ternary": every canonical name, for messages and help texts.
std::string quantizer_names(const char* separator = ", ");

}  // namespace mq::kernels
