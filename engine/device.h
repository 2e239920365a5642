#pragma once
#include <string>

namespace mq {

struct Device {
  enum class Kind { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;

  static Device cpu() { return {Kind::cpu, 0}; }
  static Device cuda(int i = 0) { return {Kind::cuda, i}; }
  bool is_cpu() const { return kind == Kind::cpu; }
  bool is_cuda() const { return kind == Kind::cuda; }
  bool operator==(const Device&) const = default;
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

  // Parses "cpu", "cuda", "cuda:N" or "auto" (CUDA when a device is usable, else CPU).
  // Throws mq::Error naming the flag value when it is malformed or CUDA is unavailable.
  static Device parse(const std::string& text);
};

// Number of usable CUDA devices (0 when built without CUDA or none is visible).
int cuda_device_count();

}  // namespace mq
