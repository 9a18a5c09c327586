// The one place where LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (PyTorch
// wheels, CUDA) differ for Scorch. Everything else includes this instead of
// testing TORCH_VERSION_* itself.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

namespace scorch::compat {

constexpr bool kTorch2 = TORCH_VERSION_MAJOR >= 2;

// Generator-taking factory functions: the optional<Generator> type is
// c10::optional in 1.13 and std::optional in 2.x; both accept a Generator.
inline torch::Tensor randn(at::IntArrayRef shape, at::Generator gen,
                           const torch::TensorOptions& opts = {}) {
  return at::randn(shape, gen, opts);
}
inline torch::Tensor rand(at::IntArrayRef shape, at::Generator gen,
                          const torch::TensorOptions& opts = {}) {
  return at::rand(shape, gen, opts);
}
inline torch::Tensor randint(int64_t low, int64_t high, at::IntArrayRef shape, at::Generator gen,
                             const torch::TensorOptions& opts = {}) {
  // int64 unless a dtype is given (LibTorch's default would be float).
  return at::randint(low, high, shape, gen, opts.has_dtype() ? opts : opts.dtype(torch::kLong));
}

// A CPU generator seeded with `seed`.
inline at::Generator cpu_generator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

// Autocast state of one device type (CPU or CUDA): the per-device API of
// LibTorch >= 2.4, the older CPU/GPU-named functions before.
struct AutocastState {
  bool enabled = false;
  torch::ScalarType dtype = torch::kFloat;
};

inline AutocastState get_autocast(torch::DeviceType type) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return {at::autocast::is_autocast_enabled(type), at::autocast::get_autocast_dtype(type)};
#else
  if (type == torch::kCPU) return {at::autocast::is_cpu_enabled(), at::autocast::get_autocast_cpu_dtype()};
  return {at::autocast::is_enabled(), at::autocast::get_autocast_gpu_dtype()};
#endif
}

inline void set_autocast(torch::DeviceType type, const AutocastState& state) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_dtype(type, state.dtype);
  at::autocast::set_autocast_enabled(type, state.enabled);
#else
  if (type == torch::kCPU) {
    at::autocast::set_autocast_cpu_dtype(state.dtype);
    at::autocast::set_cpu_enabled(state.enabled);
  } else {
    at::autocast::set_autocast_gpu_dtype(state.dtype);
    at::autocast::set_enabled(state.enabled);
  }
#endif
}

}  // namespace scorch::compat
