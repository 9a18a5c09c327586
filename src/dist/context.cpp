// Single-process context and device choice (see context.h).
#include "dist/context.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "core/config.h"
#include "core/error.h"
#include "dist/mpi.h"

namespace scorch {

void configure_device_math(const Config& config, const torch::Device& device) {
  if (!device.is_cuda()) return;
  auto& g = at::globalContext();
  g.setAllowTF32CuBLAS(config.dist.tf32);
  g.setAllowTF32CuDNN(config.dist.cudnn_tf32);
  g.setBenchmarkCuDNN(config.dist.cudnn_benchmark);
}

void configure_device_math(const Config& config, const DistContext& ctx) {
  configure_device_math(config, ctx.device);
}

DistContext make_single_process_context(const Config& config) {
  DistContext ctx;
  const auto& d = config.dist.device;
  const bool has_cuda = torch::cuda::is_available();
  if (d == DeviceName::kCuda) {
    SCORCH_CHECK(has_cuda,
                 "dist.device=cuda but no CUDA GPU is visible (or this LibTorch is "
                 "CPU-only); use dist.device=cpu or auto");
    ctx.device = torch::Device(torch::kCUDA, 0);
  } else if (d == DeviceName::kAuto && has_cuda) {
    ctx.device = torch::Device(torch::kCUDA, 0);
  }
  configure_device_math(config, ctx);
  return ctx;
}

DistContext make_context(const Config& config) {
  if (!launched_by_mpi()) return make_single_process_context(config);
  DistContext ctx = make_mpi_context(config);
  if (ctx.device.is_cpu() && ctx.local_world_size > 1 && !std::getenv("OMP_NUM_THREADS")) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    torch::set_num_threads(std::max(1, cores / ctx.local_world_size));
  }
  return ctx;
}

}  // namespace scorch
