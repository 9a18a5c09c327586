// Reads files written by Python's torch.save (the zip format of PyTorch >= 1.6:
// data.pkl, a pickle of protocol 2, plus one record per tensor storage) into
// LibTorch values. torch::pickle_load cannot be used for such files: its
// unpickler turns every collections.OrderedDict (each state_dict) into None.
// The zip is read with LibTorch's own PyTorchStreamReader; the pickle with the
// small unpickler here (the opcodes of protocols 2-4 that torch.save emits).
//
//   c10::IValue root = load_torch_file("checkpoint.pth");
//   auto model = root.toGenericDict().at("model").toGenericDict();
#pragma once

#include <ATen/core/ivalue.h>

#include <string>

namespace scorch {

// Returns the unpickled object: dict and OrderedDict -> GenericDict (insertion
// order kept, keys str or int), list -> GenericList, tuple -> Tuple, str, int,
// float, bool, None, and tensors (CPU, their saved dtype/shape/strides; views
// of one storage share it). Throws scorch::Error naming `path` for an
// unreadable or non-zip file, or a pickle holding objects other than these
// (e.g. custom classes).
c10::IValue load_torch_file(const std::string& path);

}  // namespace scorch
