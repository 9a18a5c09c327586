// NumPy .npz archives of named arrays, for reference statistics files that
// pytorch-fid, EDM and guided-diffusion read and write (`mu`, `sigma`, ...).
//
//   write_npz("stats.npz", {{"mu", mu}, {"sigma", sigma}});
//   auto arrays = read_npz("fid_stats_cifar10_train.npz");  // name -> tensor
//
// Arrays are stored uncompressed, C order, little-endian, .npy format 1.0;
// readable with numpy.load. Reading accepts what numpy.savez[_compressed]
// writes for bool, integer and float dtypes.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace scorch::data_tools {

// Writes `arrays` (CPU or not; any of uint8, int32, int64, float32, float64,
// bool) atomically: a temporary file in the same directory, then a rename.
// Throws scorch::Error naming the file on failure.
void write_npz(const std::string& path, const std::map<std::string, torch::Tensor>& arrays);

// Every array of an .npz file, as CPU tensors of the stored dtype (unsigned
// 16/32/64-bit become int64). Throws scorch::Error naming the file and the
// member on a damaged archive or an unsupported dtype.
std::map<std::string, torch::Tensor> read_npz(const std::string& path);

}  // namespace scorch::data_tools
