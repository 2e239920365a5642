#pragma once
// Small, portable, seedable RNG for the data pipeline. std:: distributions are
// implementation-defined, so everything here is spelled out: the same seed gives the same
// numbers on every compiler and platform.
#include <cstdint>

namespace mq {

// SplitMix64 finalizer: a good 64-bit mixing function.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Combines several values into one stream key (seed, epoch, sample ...).
inline uint64_t mix_keys(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b + 0x632BE59BD9B4E019ull)); }
inline uint64_t mix_keys(uint64_t a, uint64_t b, uint64_t c) { return mix_keys(mix_keys(a, b), c); }

class DataRng {
 public:
  explicit DataRng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64() {
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform integer in [0, n), n > 0, without modulo bias (rejection on the 64-bit range).
  uint64_t below(uint64_t n) {
    const uint64_t limit = ~uint64_t{0} - (~uint64_t{0} % n);
    uint64_t x;
    do x = next_u64();
    while (x >= limit);
    return x % n;
  }
  // Uniform in [0, 1) with 24 bits of precision.
  float uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }
  bool coin() { return (next_u64() >> 63) != 0; }

 private:
  uint64_t state_;
};

}  // namespace mq
