// libFuzzer target: the CIFAR binary reader (data/cifar.h). The first byte picks CIFAR-10 or
// CIFAR-100 and the split; the rest is the split's one batch file, written into a temporary
// data directory and read through load_cifar (the path mqtrain takes). Only mq::Error may
// escape the reader; anything else is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/cifar.h"
#include "kernels/base/error.h"

namespace {

std::string temp_dir() {
  const char* base = std::getenv("TMPDIR");
  const std::string root = std::filesystem::is_directory("/dev/shm") ? "/dev/shm"
                           : base                                    ? base
                                                                     : "/tmp";
  const std::string dir = root + "/mq_fuzz_cifar_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = temp_dir();
  if (size == 0) return 0;
  const auto v = (data[0] & 1) ? mq::CifarVariant::cifar100 : mq::CifarVariant::cifar10;
  // CIFAR-10 has one test file; its train split needs five, so only the test split is fed.
  const std::string file = dir + "/" + mq::cifar_file_names(v, false).front();
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
  }
  try {
    mq::Dataset d = mq::load_cifar(dir, v, false);
    d.validate();  // what the reader returns is consistent
  } catch (const mq::Error&) {
  }
  std::filesystem::remove(file);
  return 0;
}
