// Reads a vector dataset (samples written by `scorch sample` for vector
// data, or converted ones) into one [N, D] float32 tensor.
#pragma once

#include <torch/torch.h>

#include <string>

#include "data/sharded_dataset.h"

namespace scorch::testing {

inline torch::Tensor read_vectors(const std::string& dir) {
  ShardedDataset d(dir);
  auto x = torch::empty({d.size(), d.manifest().sample_shape[0]});
  for (int64_t i = 0; i < d.size(); ++i) d.read(i, x[i].data_ptr());
  return x;
}

}  // namespace scorch::testing
