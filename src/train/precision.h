// Mixed precision for training (precision.dtype): autocast of the forward
// pass to bfloat16 or float16 while weights, optimizer state and EMA stay
// float32 (the "master weights" are the model's own float32 parameters, as
// in NVlabs/edm), and dynamic loss scaling for float16 (PyTorch GradScaler,
// guided-diffusion fp16_util): the loss is multiplied by the scale before
// backward, gradients are divided by it after the all-reduce, an overflow
// (non-finite gradient on any rank) skips the step and multiplies the scale
// by backoff_factor, and growth_interval finite steps in a row multiply it by
// growth_factor.
//
//   AutocastGuard autocast(device, torch::kBFloat16);   // forward under autocast
//   LossScaler scaler(config.precision, /*enabled=*/true, device);
//   (loss * *scaler.scaled(1)).backward();  ...  scaler.unscale(params);
//   scaler.update(skipped);   // a 0-dim device tensor: no host read
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/compat.h"
#include "core/config.h"

namespace scorch {

// The autocast dtype precision.dtype asks for on `device`, or nullopt for
// float32. float16 autocast needs a CUDA device: on the CPU (LibTorch's CPU
// autocast is bfloat16 only) fp16 computes in float32 and only the loss
// scaling runs; the trainer says so in its log.
std::optional<torch::ScalarType> autocast_dtype(const PrecisionConfig& config,
                                                const torch::Device& device);

// Autocast on for `device`'s type with `dtype` while alive (nullopt: a no-op);
// restores the previous state and clears autocast's cast cache on exit.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, std::optional<torch::ScalarType> dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  torch::DeviceType type_ = torch::kCPU;
  compat::AutocastState previous_;
};

class LossScaler {
 public:
  // Scale 1 and never changing unless `enabled` (precision.dtype == fp16).
  // The scale and growth tracker live on `device` (float64 0-dim tensors,
  // as GradScaler keeps them), so that a step reads nothing on the host.
  LossScaler(const PrecisionConfig& config, bool enabled,
             const torch::Device& device = torch::kCPU);

  bool enabled() const { return enabled_; }
  // The current scale and growth tracker, read on the host (a device sync:
  // for logging and checkpoints).
  double scale() const;
  // Finite steps since the last growth or backoff.
  int64_t growth_tracker() const;
  // The scale divided by `accum` as a float64 0-dim tensor on the device
  // (for `loss * scaled(accum)`), or nullopt when disabled (scale 1).
  std::optional<torch::Tensor> scaled(int64_t accum) const;
  // The scale as a float64 0-dim tensor on the device (1 when disabled).
  const torch::Tensor& scale_tensor() const { return scale_; }

  // Divides every defined gradient of `params` by the scale in one
  // multi-tensor call and returns found_inf, a float32 0-dim tensor on the
  // device: 1 where a gradient held a NaN or infinity (LibTorch 2.x; 1.13
  // leaves it 0, the gradient norm's check covers it). Disabled: a no-op
  // that returns an undefined tensor.
  torch::Tensor unscale(const std::vector<torch::Tensor>& params) const;
  // After each step, on the device: `skipped` (a 0-dim tensor, 1 when the
  // step was skipped for a non-finite gradient or loss) backs off, 0 counts
  // towards growth; nothing is read on the host.
  void update(const torch::Tensor& skipped);
  void update(bool finite);

  // For the checkpoint's "loss_scaler" entry: {"scale": double,
  // "growth_tracker": int}; load_state throws scorch::Error naming `origin`
  // on a malformed entry.
  c10::IValue state() const;
  void load_state(const c10::IValue& state, const std::string& origin);

 private:
  PrecisionConfig config_;
  bool enabled_;
  torch::Tensor scale_;           // float64 0-dim on the device
  torch::Tensor growth_tracker_;  // float64 0-dim on the device
};

// training.zero_nonfinite_grads (EDM2's force_finite, torch.nan_to_num(g,
// nan=0, posinf=0, neginf=0) on every gradient): every NaN, +inf and -inf
// of the defined gradients of `params` becomes 0, every other entry keeps its
// bits. In a few kernels per chunk (train/chunks.h; on CUDA chunks of up to
// 2^28 elements, so one for most networks), never one per tensor, and with
// no host read. `report`: also returns a float32 0-dim tensor on the
// gradients' device, 1 where some entry was non-finite before zeroing
// (else the result is undefined).
torch::Tensor zero_nonfinite_grads(const std::vector<torch::Tensor>& params, bool report = false);

// Whether a step's gradients count as non-finite, the gradient half of the
// skip decision (a bool 0-dim tensor on the device; no host read):
// !isfinite(grad_norm) or found_inf (fp16's unscale; undefined without a
// loss scale). `zeroed` (training.zero_nonfinite_grads, after
// zero_nonfinite_grads): the gradient norm does not count, as EDM2 never
// skips a step for a non-finite gradient, and only found_inf, the loss
// scale's overflow, does (it still skips the step and backs the scale off).
torch::Tensor nonfinite_gradients(const torch::Tensor& grad_norm, const torch::Tensor& found_inf,
                                  bool zeroed);

// Names of the tensors in `named` that hold a NaN or infinity (for
// diagnostics; one device sync per tensor).
std::vector<std::string> nonfinite_tensor_names(
    const std::vector<std::pair<std::string, torch::Tensor>>& named);

}  // namespace scorch
