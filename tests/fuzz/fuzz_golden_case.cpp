// libFuzzer target: a golden case's files as read before a replay (meta/golden/golden.h
// check_case_files). Input: the case's JSON object (the manifest entry), a NUL byte, then a
// flags byte and records. The manifest is a fixed set header (steps 1, batch 1, hidden 4,
// num_fc 3) around the case text. Flags bit 0 first fills the case folder with every tensor the
// case needs (zeros of the right shapes), so the checks past "missing" are reached. Each record
// is [stem index][length: 2 bytes little-endian][bytes]: the bytes become <stem>.npy in the case
// folder (length 0 removes it). Only mq::Error may escape; anything else is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/io/npy.h"
#include "kernels/base/error.h"
#include "meta/golden/golden.h"

namespace fs = std::filesystem;

namespace {

const char* const kStems[] = {
    "step1.logits", "final.fc.bias", "final.fc.weight", "final.conv1.weight",
    "final.bn1.running_var", "final.bn1.weight", "final.layer3.2.bn2.bias",
    "step1.grad.fc.bias", "step1.grad.conv1.weight", "meta_init.network.Linear0.weight",
    "meta_init.network.Linear1.weight", "meta_final.network.Linear2.weight",
    "meta_init.linear1.weight", "meta_final.linear2.weight", "meta_init.lstm1.weight_hh_l0",
    "meta_final.fc1.bias", "meta_init.lstm1.bias_ih_l0", "final.extra"};
constexpr size_t kStemCount = sizeof(kStems) / sizeof(kStems[0]);

std::string make_golden_dir() {
  const char* base = std::getenv("TMPDIR");
  const std::string root = fs::is_directory("/dev/shm") ? "/dev/shm" : base ? base : "/tmp";
  const std::string dir = root + "/mq_fuzz_golden_case_" + std::to_string(::getpid());
  fs::create_directories(dir);
  mq::save_npy(dir + "/inputs_x.npy", mq::Tensor::zeros({1, 1, 3, 32, 32}, mq::DType::f32));
  mq::save_npy(dir + "/inputs_y.npy", mq::Tensor::zeros({1, 1}, mq::DType::i64));
  return dir;
}

void write(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = make_golden_dir();
  const uint8_t* end = data + size;
  const uint8_t* nul = data;
  while (nul < end && *nul != 0) ++nul;
  const std::string manifest =
      "{\"lr\": 0.001, \"meta_lr\": 0.001, \"hidden\": 4, \"num_fc\": 3, "
      "\"meta_nonlinear\": null, \"adam_weight_decay\": 0.0005, \"batch\": 1, \"steps\": 1, "
      "\"cases\": [" + std::string(reinterpret_cast<const char*>(data), nul - data) + "]}";
  write(dir + "/manifest.json", reinterpret_cast<const uint8_t*>(manifest.data()),
        manifest.size());
  const uint8_t* p = nul < end ? nul + 1 : end;
  const uint8_t flags = p < end ? *p++ : 0;
  try {
    const mq::golden::Set set = mq::golden::load_set(dir);
    const mq::golden::Case& c = set.cases.front();
    // Names are plain (load_set checked); keep the set's own files out of reach.
    if (c.name == "inputs_x.npy" || c.name == "inputs_y.npy" || c.name == "manifest.json")
      return 0;
    const std::string case_dir = dir + "/" + c.name;
    std::error_code ec;  // a name too long for the file system: the reader reports it below
    fs::remove_all(case_dir, ec);
    fs::create_directory(case_dir, ec);
    if ((flags & 1) && !ec)
      for (const auto& [stem, shape] : mq::golden::expected_case_files(set, c))
        mq::save_npy(case_dir + "/" + stem + ".npy", mq::Tensor::zeros(shape, mq::DType::f32));
    while (end - p >= 3) {
      const std::string file = case_dir + "/" + kStems[p[0] % kStemCount] + ".npy";
      const size_t n = std::min<size_t>(p[1] | size_t{p[2]} << 8, end - p - 3);
      p += 3;
      if (n == 0) fs::remove(file, ec);
      else write(file, p, n);
      p += n;
    }
    mq::golden::check_case_files(set, c);
  } catch (const mq::Error&) {
  }
  return 0;
}
