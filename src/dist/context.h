// The process context: rank, world size, local rank and the device this
// process trains on. Started without a launcher it is world size 1 with no
// MPI at all; the multi-process context (MPI, one GPU per rank) builds on it.
#pragma once

#include <torch/torch.h>

namespace scorch {

struct Config;

struct DistContext {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  torch::Device device = torch::kCPU;
  bool is_main() const { return rank == 0; }
};

// World size 1 on dist.device: cpu, cuda (error if no GPU is visible), or
// auto (the first GPU if there is one, else the CPU).
DistContext make_single_process_context(const Config& config);

}  // namespace scorch
