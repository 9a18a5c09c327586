// The one place where LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (PyTorch
// wheels, CUDA) differ for Scorch. Everything else includes this instead of
// testing TORCH_VERSION_* itself.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#ifdef SCORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

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

// Whether autocast caches the lower-precision copies of float32 leaf tensors
// (weights) while a region is open; the same functions in 1.13 and 2.x.
inline bool autocast_cache_enabled() { return at::autocast::is_autocast_cache_enabled(); }
inline void set_autocast_cache_enabled(bool enabled) {
  at::autocast::set_autocast_cache_enabled(enabled);
}

// tensors[i] *= scalar (a 0-dim tensor on their device) in one multi-tensor
// call: 2.x has the tensor-scalar overload; 1.13 takes a list of the scalar.
inline void foreach_mul_(std::vector<torch::Tensor>& tensors, const torch::Tensor& scalar) {
#if TORCH_VERSION_MAJOR >= 2
  at::_foreach_mul_(tensors, scalar);
#else
  at::_foreach_mul_(tensors, std::vector<torch::Tensor>(tensors.size(), scalar));
#endif
}

// GradScaler's unscale: grads *= inv_scale (a float32 0-dim tensor on their
// device, the list's own dtype, so CUDA takes its multi-tensor route) in one
// call, setting found_inf (float32, one element, on the device) to 1 where a
// gradient holds a NaN or an infinity: _amp_foreach_non_finite_check_and_unscale_
// on 2.x. 1.13 (CPU only) multiplies and leaves found_inf as it is; the
// gradient norm's finiteness check sees the same gradients. x * inv_scale
// rounds the same either way.
inline void unscale_and_check_(std::vector<torch::Tensor>& grads, torch::Tensor& found_inf,
                               const torch::Tensor& inv_scale) {
#if TORCH_VERSION_MAJOR >= 2
  at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale);
#else
  (void)found_inf;
  foreach_mul_(grads, inv_scale);
#endif
}

// dst[i].copy_(src[i]) for aligned lists: one multi-tensor kernel where
// LibTorch has _foreach_copy_ (2.x), a loop of copies before (1.13, CPU only).
inline void foreach_copy_(const std::vector<torch::Tensor>& dst,
                          const std::vector<torch::Tensor>& src) {
#if __has_include(<ATen/ops/_foreach_copy.h>)
  at::_foreach_copy_(dst, src);
#else
  for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
#endif
}

// Whether this LibTorch has the fused Adam/AdamW kernel (2.x).
constexpr bool has_fused_adam() { return TORCH_VERSION_MAJOR >= 2; }

// LibTorch's fused Adam/AdamW kernel (one launch for all parameters; 2.x):
// p, g, m, v, steps aligned lists on one CUDA device; `steps` the step counts
// after this step (float32 0-dim tensors). `found_inf` (optional, a float32
// 0-dim tensor): where it is 1 the kernel changes nothing (GradScaler's skip,
// decided on the device). False (nothing done) where LibTorch lacks it.
inline bool fused_adam_(std::vector<torch::Tensor>& p, std::vector<torch::Tensor>& g,
                        std::vector<torch::Tensor>& m, std::vector<torch::Tensor>& v,
                        std::vector<torch::Tensor>& steps, double lr, double beta1, double beta2,
                        double weight_decay, double eps, bool adamw,
                        const torch::Tensor& found_inf = {}) {
#if TORCH_VERSION_MAJOR >= 2
  const c10::optional<at::Tensor> found =
      found_inf.defined() ? c10::optional<at::Tensor>(found_inf) : c10::nullopt;
  if (adamw) {
    at::_fused_adamw_(p, g, m, v, {}, steps, lr, beta1, beta2, weight_decay, eps, false, false,
                      c10::nullopt, found);
  } else {
    at::_fused_adam_(p, g, m, v, {}, steps, lr, beta1, beta2, weight_decay, eps, false, false,
                     c10::nullopt, found);
  }
  return true;
#else
  (void)p, (void)g, (void)m, (void)v, (void)steps, (void)lr, (void)beta1, (void)beta2;
  (void)weight_decay, (void)eps, (void)adamw, (void)found_inf;
  return false;
#endif
}

#ifdef SCORCH_CUDA
// The CUDA caching allocator's statistics: StatType moved from
// c10::cuda::CUDACachingAllocator to c10::CachingDeviceAllocator in 2.x.
#if __has_include(<c10/core/CachingDeviceAllocator.h>)
using AllocatorStatType = c10::CachingDeviceAllocator::StatType;
#else
using AllocatorStatType = c10::cuda::CUDACachingAllocator::StatType;
#endif
#endif

// Bytes held by tensors on a CUDA device, now and at the peak since the last
// reset_gpu_peak. False (and nothing written) for the CPU or a CPU build.
inline bool gpu_memory(const torch::Device& device, double* allocated, double* peak) {
#ifdef SCORCH_CUDA
  if (!device.is_cuda()) return false;
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const auto stats = alloc::getDeviceStats(device.has_index() ? device.index() : 0);
  const auto& bytes = stats.allocated_bytes[static_cast<size_t>(AllocatorStatType::AGGREGATE)];
  *allocated = static_cast<double>(bytes.current);
  *peak = static_cast<double>(bytes.peak);
  return true;
#else
  (void)device, (void)allocated, (void)peak;
  return false;
#endif
}

inline void reset_gpu_peak(const torch::Device& device) {
#ifdef SCORCH_CUDA
  if (device.is_cuda())
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
#else
  (void)device;
#endif
}

// Whether at::scaled_dot_product_attention takes a `scale` (LibTorch >= 2.1):
// the networks' attention goes through compat::attention there and keeps its
// own bmm + float32 softmax math on 1.13 (bit-identical to what it was).
constexpr bool has_sdpa() {
  return TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1);
}

// softmax(q k^T * scale) v: q [B, H, Lq, d], k and v [B, H, Lk, d], one dtype,
// each contiguous in d (the layout the flash / memory-efficient CUDA kernels
// and the CPU's fused kernel take) -> [B, H, Lq, d]. SDPA where has_sdpa();
// elsewhere the same math with the softmax in float32 (float64 for float64).
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/false, /*scale=*/scale);
#else
  const auto logits = torch::matmul(q, k.transpose(-2, -1)) * scale;
  const auto weights = torch::softmax(
      logits, -1, logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat);
  return torch::matmul(weights.to(v.scalar_type()), v);
#endif
}

}  // namespace scorch::compat
