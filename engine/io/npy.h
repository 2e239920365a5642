#pragma once
// NumPy .npy files <-> Tensor. Reads format versions 1.0 and 2.0 (C order, little-endian,
// dtypes <f4 <f8 <i8 <i4 |u1); writes version 1.0 (2.0 only when the header needs it).
// Every malformed input is an mq::Error naming the file and the problem.
#include <map>
#include <string>

#include "engine/tensor.h"

namespace mq {

// Reads one .npy file into a CPU tensor.
Tensor load_npy(const std::string& path);
// Writes a tensor (any device: it is copied to the host explicitly) as .npy, atomically
// (a temporary file renamed into place).
void save_npy(const std::string& path, const Tensor& t);

// The same on in-memory bytes; `source` names the origin in error messages.
Tensor decode_npy(const std::string& bytes, const std::string& source);
std::string encode_npy(const Tensor& t);

// Every file `<dir>/<prefix><name>.npy`, keyed by <name> (sorted). Files without the prefix
// are ignored; an empty result is an error (wrong directory or prefix).
std::map<std::string, Tensor> load_npy_dir(const std::string& dir, const std::string& prefix = "");
// Writes `<dir>/<prefix><name>.npy` for every entry, creating `dir` when missing.
void save_npy_dir(const std::string& dir, const std::map<std::string, Tensor>& tensors,
                  const std::string& prefix = "");

}  // namespace mq
