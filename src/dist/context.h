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
  int local_world_size = 1;  // ranks on this node
  torch::Device device = torch::kCPU;
  bool is_main() const { return rank == 0; }
};

// On a CUDA device, process-wide, PyTorch's defaults unless the config says
// otherwise: TF32 matmuls (dist.tf32, off), TF32 convolutions
// (dist.cudnn_tf32, on) and cuDNN's benchmark mode (dist.cudnn_benchmark,
// on). Nothing on the CPU. Both context makers call it, and so do the
// benchmarks, so that their figures describe training.
void configure_device_math(const Config& config, const torch::Device& device);
void configure_device_math(const Config& config, const DistContext& ctx);

// World size 1 on dist.device: cpu, cuda (error if no GPU is visible), or
// auto (the first GPU if there is one, else the CPU).
DistContext make_single_process_context(const Config& config);

// The context of this process: from MPI when an MPI launcher (mpirun, srun)
// started it (GPU = local rank modulo the visible GPUs), else world size 1
// without initialising MPI. CPU ranks sharing a node split its cores:
// LibTorch's intra-op threads = cores / local ranks (at least 1), unless
// OMP_NUM_THREADS is set.
DistContext make_context(const Config& config);

}  // namespace scorch
