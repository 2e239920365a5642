#pragma once
// Import of PyTorch checkpoints (.pth/.pt) holding a state dict, without Python.
//
// Both formats torch.save writes are read:
//  - zip (PyTorch >= 1.6): `<dir>/data.pkl` plus one `<dir>/data/<key>` entry per storage;
//    stored or deflated entries, zip64, CRC-32 checked;
//  - legacy (PyTorch <= 1.5, or `_use_new_zipfile_serialization=False`): pickled magic number,
//    protocol version and system info, the pickled object, the pickled list of storage keys,
//    then every storage's raw bytes behind an 8-byte element count.
// The pickle is read by a strict, non-executing parser (engine/io/pth_pickle.h) that accepts
// only the globals a state dict uses; anything else is an mq::Error naming the file, the pickle
// offset and the opcode or global.
//
// The object may be the state dict itself, or a dict wrapping it under 'state_dict',
// 'model_state_dict', 'model', 'net' or 'network' (other entries such as 'epoch' are ignored).
// A `module.` prefix on every key (nn.DataParallel) is stripped. Strided, offset and
// shared-storage tensors are copied to contiguous tensors. Float tensors come back as f32
// (double, half and bfloat16 are converted), int64/int32/uint8 keep their dtype, and other
// dtypes (bool, int8, int16, complex) are rejected.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tensor.h"

namespace mq {

// The same alias as models/module.h declares (engine/ does not include models/).
using TensorMap = std::map<std::string, Tensor>;

struct PthInfo {
  std::string format;                  // "zip" or "legacy"
  std::string wrapper_key;             // "" or the key the state dict was found under
  bool stripped_module_prefix = false;  // keys had DataParallel's "module." prefix
  std::vector<std::string> converted;  // keys whose dtype was converted to f32
};

// Reads the state dict of a PyTorch checkpoint file into CPU tensors.
TensorMap load_pth(const std::string& path, PthInfo* info = nullptr);
// The same from the file's bytes; `source` names it in error messages.
TensorMap decode_pth(std::string_view bytes, const std::string& source, PthInfo* info = nullptr);

}  // namespace mq
