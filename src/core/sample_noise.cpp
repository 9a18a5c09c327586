// Per-sample noise streams (see sample_noise.h). Row i's generator is a CPU
// mt19937 generator (LibTorch's CPUGeneratorImpl) seeded with
// derive_seed(seed, kStream, first + i); rows are drawn on the CPU in float32
// and moved to the requested device, so the values are the same on every
// device type.
#include "core/sample_noise.h"

#include <ATen/Parallel.h>

#include "core/compat.h"
#include "core/error.h"
#include "core/rng.h"

namespace scorch {
namespace {

constexpr uint64_t kPerSampleStream = 0x5E1D;
thread_local PerSampleNoise* active_scope = nullptr;

}  // namespace

PerSampleNoise::PerSampleNoise(uint64_t seed, int64_t first, int64_t count) {
  TORCH_CHECK(active_scope == nullptr, "PerSampleNoise scopes do not nest");
  TORCH_CHECK(first >= 0 && count > 0, "PerSampleNoise needs first >= 0 and count > 0");
  generators_.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    generators_.push_back(
        compat::cpu_generator(derive_seed(seed, kPerSampleStream, static_cast<uint64_t>(first + i))));
  active_scope = this;
}

PerSampleNoise::~PerSampleNoise() { active_scope = nullptr; }

torch::Tensor PerSampleNoise::draw(at::IntArrayRef shape, bool pinned) {
  TORCH_CHECK(!shape.empty() && shape[0] == static_cast<int64_t>(generators_.size()),
              "a per-sample noise draw of shape ", shape, " does not have the scope's ",
              generators_.size(), " rows");
  // Row i is generator i's randn(row shape) (randn is empty + normal_, so the
  // same values), filled in place, rows in parallel over the intra-op threads.
  auto out = torch::empty(shape, torch::TensorOptions(torch::kFloat).pinned_memory(pinned));
  at::parallel_for(0, shape[0], 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out.select(0, i).normal_(0, 1, generators_[i]);
  });
  return out;
}

namespace {
// To the sampler's device: from pinned memory without blocking the host on CUDA.
torch::Tensor to_device(PerSampleNoise& scope, at::IntArrayRef shape, const torch::Device& device,
                        torch::ScalarType dtype) {
  const bool cuda = device.is_cuda();
  return scope.draw(shape, /*pinned=*/cuda).to(device, dtype, /*non_blocking=*/cuda);
}
}  // namespace

torch::Tensor sample_randn(at::IntArrayRef shape, const torch::TensorOptions& options) {
  if (active_scope == nullptr) return torch::randn(shape, options);
  return to_device(*active_scope, shape, options.device(), options.dtype().toScalarType());
}

torch::Tensor sample_randn_like(const torch::Tensor& x) {
  if (active_scope == nullptr) return torch::randn_like(x);
  return to_device(*active_scope, x.sizes(), x.device(), x.scalar_type());
}

}  // namespace scorch
