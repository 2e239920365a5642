#include "data/cifar.h"

#include <filesystem>

#include "kernels/base/error.h"
#include "engine/io/file.h"
#include "engine/io/input_file.h"

namespace fs = std::filesystem;

namespace mq {

size_t cifar_record_bytes(CifarVariant v) {
  return (v == CifarVariant::cifar10 ? 1 : 2) + kCifarImageBytes;
}
int cifar_classes(CifarVariant v) { return v == CifarVariant::cifar10 ? 10 : 100; }
const char* cifar_name(CifarVariant v) { return v == CifarVariant::cifar10 ? "cifar10" : "cifar100"; }

static const char* pretty(CifarVariant v) { return v == CifarVariant::cifar10 ? "CIFAR-10" : "CIFAR-100"; }
static const char* script_arg(CifarVariant v) { return v == CifarVariant::cifar10 ? "10" : "100"; }

std::vector<std::string> cifar_file_names(CifarVariant v, bool train) {
  if (v == CifarVariant::cifar100) return {train ? "train.bin" : "test.bin"};
  if (!train) return {"test_batch.bin"};
  std::vector<std::string> names;
  for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
  return names;
}

Dataset read_cifar_file(const std::string& path, CifarVariant v) {
  const size_t record = cifar_record_bytes(v);
  const std::string what = fmt::format("{} file", pretty(v));
  const uint64_t size = input_file_size(
      path, what, fmt::format("run scripts/get-cifar.sh {} DIR", script_arg(v)));
  // Sizes are checked on the file's size before anything is read or allocated.
  MQ_CHECK(size > 0, "{}: empty file; expected {} records of {} bytes; re-download with "
           "scripts/get-cifar.sh {} DIR", path, pretty(v), record, script_arg(v));
  MQ_CHECK(size <= kMaxDataFileBytes,
           "{}: {} bytes is larger than any {} file ({} bytes at most are read): not {} binary",
           path, size, pretty(v), kMaxDataFileBytes, pretty(v));
  MQ_CHECK(size % record == 0,
           "{}: size {} bytes is not a multiple of the {}-byte {} record ({} whole records + {} "
           "bytes): the file is truncated or not {} binary; re-download with "
           "scripts/get-cifar.sh {} DIR",
           path, size, record, pretty(v), size / record, size % record, pretty(v), script_arg(v));
  const std::string raw = read_file(path, what.c_str());
  MQ_CHECK(raw.size() == size, "{}: the file changed while it was read ({} bytes, then {})", path,
           size, raw.size());

  const size_t n = raw.size() / record;
  Dataset d;
  d.name = cifar_name(v);
  d.channels = 3;
  d.height = d.width = 32;
  d.classes = cifar_classes(v);
  d.images.resize(n * kCifarImageBytes);  // < raw.size(): bounded by the bytes present
  d.labels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* r = reinterpret_cast<const uint8_t*>(raw.data()) + i * record;
    int label;
    if (v == CifarVariant::cifar10) {
      label = r[0];
    } else {
      MQ_CHECK(r[0] < 20, "{}: record {} (byte offset {}) has coarse label {}, CIFAR-100 coarse "
               "labels are 0..19: the file is corrupt or not CIFAR-100; re-download with "
               "scripts/get-cifar.sh 100 DIR", path, i, i * record, r[0]);
      label = r[1];
    }
    MQ_CHECK(label < d.classes,
             "{}: record {} (byte offset {}) has label {}, {} labels are 0..{}: the file is "
             "corrupt or not {} binary; re-download with scripts/get-cifar.sh {} DIR",
             path, i, i * record + (record - kCifarImageBytes - 1), label, pretty(v),
             d.classes - 1, pretty(v), script_arg(v));
    d.labels[i] = label;
    std::copy(r + (record - kCifarImageBytes), r + record, d.image(i));
  }
  return d;
}

Dataset load_cifar(const std::string& dir, CifarVariant v, bool train) {
  MQ_CHECK(!dir.empty(), "{}: no data directory given; download it with scripts/get-cifar.sh {} "
           "DIR and pass DIR", pretty(v), script_arg(v));
  const PathCheck d = check_directory(dir);
  MQ_CHECK(d.ok(), "{}: {} data directory {}; download it with scripts/get-cifar.sh {} {}", dir,
           pretty(v), d.missing ? "does not exist" : d.problem, script_arg(v), dir);
  const auto names = cifar_file_names(v, train);
  fs::path base = dir;
  // The files directly in `dir`, or in the folder the official archive extracts to.
  if (check_regular_file((base / names[0]).string()).missing) {
    fs::path sub = base / (v == CifarVariant::cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary");
    if (!check_regular_file((sub / names[0]).string()).missing) base = sub;
  }
  for (const auto& name : names) {
    const fs::path p = base / name;
    const PathCheck f = check_regular_file(p.string());
    MQ_CHECK(!f.missing,
             "{}: missing {} file {} (a {} split needs {}); download it with "
             "scripts/get-cifar.sh {} {}",
             p.string(), pretty(v), name, train ? "train" : "test",
             names.size() == 1 ? names[0] : names.front() + " .. " + names.back(), script_arg(v),
             dir);
    MQ_CHECK(f.ok(), "{}: the {} file {}; download the data again with "
             "scripts/get-cifar.sh {} {}", p.string(), pretty(v), f.problem, script_arg(v), dir);
  }
  Dataset all;
  for (size_t i = 0; i < names.size(); ++i) {
    Dataset part = read_cifar_file((base / names[i]).string(), v);
    if (i == 0) all = std::move(part);
    else all.append(part);
  }
  all.name = cifar_name(v);
  return all;
}

}  // namespace mq
