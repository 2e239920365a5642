#pragma once
// mq checkpoints: one file holding named tensors and a JSON metadata document.
//
// Layout (all integers little-endian):
//   header (32 bytes): magic "MQCKPT\r\n", u32 format version, u32 header size (32),
//                      u64 payload size, u32 CRC-32 of the payload, u32 zero
//   payload:           u64 metadata length, metadata (UTF-8 JSON text),
//                      u64 tensor count, then per tensor (in name order):
//                      u32 name length, name, u8 dtype code, u8 rank, u16 zero,
//                      i64 dims[rank], u64 data length, raw row-major data
// Writes are atomic: a temporary file in the same directory, fsync, rename over the target,
// fsync of the directory. Loading checks magic, version, sizes (truncation) and the checksum,
// with errors naming the file.
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/tensor.h"

namespace mq {

using TensorMap = std::map<std::string, Tensor>;  // as in models/module.h

constexpr uint32_t kCheckpointVersion = 1;

struct Checkpoint {
  TensorMap tensors;  // CPU tensors
  nlohmann::json meta;
};

// Saves tensors (any device: CUDA tensors are copied to the host) and metadata to `path`,
// atomically. Parent directories must exist.
void save_checkpoint(const std::string& path, const TensorMap& tensors,
                     const nlohmann::json& meta = nlohmann::json::object());
Checkpoint load_checkpoint(const std::string& path);

// The same on in-memory bytes; `source` names the data in error messages.
std::string encode_checkpoint(const TensorMap& tensors, const nlohmann::json& meta);
Checkpoint decode_checkpoint(const std::string& bytes, const std::string& source);

// Sub-states sharing one checkpoint (model, trainer, optimizers): every (name, tensor) of `in`
// stored as `prefix + name`, and the entries under `prefix` with the prefix removed.
template <class Entries>
void add_prefixed(TensorMap& out, const std::string& prefix, const Entries& in) {
  for (const auto& [name, t] : in) out[prefix + name] = t;
}
TensorMap strip_prefix(const TensorMap& in, const std::string& prefix);

// Writes `bytes` to `path` atomically (temporary file, fsync, rename, directory fsync).
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace mq
