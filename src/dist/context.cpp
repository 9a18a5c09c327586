// Single-process context and device choice (see context.h).
#include "dist/context.h"

#include "core/config.h"
#include "core/error.h"

namespace scorch {

DistContext make_single_process_context(const Config& config) {
  DistContext ctx;
  const auto& d = config.dist.device;
  const bool has_cuda = torch::cuda::is_available();
  if (d == "cuda") {
    SCORCH_CHECK(has_cuda,
                 "dist.device=cuda but no CUDA GPU is visible (or this LibTorch is "
                 "CPU-only); use dist.device=cpu or auto");
    ctx.device = torch::Device(torch::kCUDA, 0);
  } else if (d == "auto" && has_cuda) {
    ctx.device = torch::Device(torch::kCUDA, 0);
  }
  return ctx;
}

}  // namespace scorch
