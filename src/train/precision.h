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
//   LossScaler scaler(config.precision);
//   (loss * scaler.scale()).backward();  ...  scaler.unscale(params);
//   scaler.update(finite);
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
  LossScaler(const PrecisionConfig& config, bool enabled);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  // Finite steps since the last growth or backoff.
  int64_t growth_tracker() const { return growth_tracker_; }

  // Divides every defined gradient of `params` by scale() (no-op at scale 1).
  void unscale(const std::vector<torch::Tensor>& params) const;
  // After each step: `finite` false (overflow, the step was skipped) backs
  // off; true counts towards growth.
  void update(bool finite);

  // For the checkpoint's "loss_scaler" entry: {"scale": double,
  // "growth_tracker": int}; load_state throws scorch::Error naming `origin`
  // on a malformed entry.
  c10::IValue state() const;
  void load_state(const c10::IValue& state, const std::string& origin);

 private:
  PrecisionConfig config_;
  bool enabled_;
  double scale_ = 1.0;
  int64_t growth_tracker_ = 0;
};

// Names of the tensors in `named` that hold a NaN or infinity (for
// diagnostics; one device sync per tensor).
std::vector<std::string> nonfinite_tensor_names(
    const std::vector<std::pair<std::string, torch::Tensor>>& named);

}  // namespace scorch
