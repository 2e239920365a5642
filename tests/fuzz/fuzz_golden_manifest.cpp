// libFuzzer target: the golden manifest (meta/golden/golden.h load_set). The input is manifest.json
// of a golden directory that also holds tiny inputs (steps 1, batch 1); load_set parses and
// range-checks every field and the inputs, and the meta network of each metaquant case is
// configured (no replay). Only mq::Error may escape; anything else is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/io/npy.h"
#include "kernels/base/error.h"
#include "meta/golden/golden.h"

namespace {

std::string make_golden_dir() {
  const char* base = std::getenv("TMPDIR");
  const std::string root = std::filesystem::is_directory("/dev/shm") ? "/dev/shm"
                           : base                                    ? base
                                                                     : "/tmp";
  const std::string dir = root + "/mq_fuzz_golden_manifest_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  mq::save_npy(dir + "/inputs_x.npy", mq::Tensor::zeros({1, 1, 3, 32, 32}, mq::DType::f32));
  mq::save_npy(dir + "/inputs_y.npy", mq::Tensor::zeros({1, 1}, mq::DType::i64));
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = make_golden_dir();
  {
    std::ofstream out(dir + "/manifest.json", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const mq::golden::Set set = mq::golden::load_set(dir);
    for (const auto& c : set.cases)
      if (c.mode == "metaquant") mq::golden::meta_config(set, c);
  } catch (const mq::Error&) {
  }
  return 0;
}
