// Autocast guard and dynamic loss scaling (see precision.h).
#include "train/precision.h"

#include <cmath>

#include "core/error.h"

namespace scorch {

std::optional<torch::ScalarType> autocast_dtype(const PrecisionConfig& config,
                                                const torch::Device& device) {
  if (config.dtype == PrecisionDtype::kBf16) return torch::kBFloat16;
  if (config.dtype == PrecisionDtype::kFp16 && device.is_cuda()) return torch::kHalf;
  return std::nullopt;
}

AutocastGuard::AutocastGuard(const torch::Device& device, std::optional<torch::ScalarType> dtype)
    : active_(dtype.has_value()), type_(device.type()) {
  if (!active_) return;
  previous_ = compat::get_autocast(type_);
  compat::set_autocast(type_, {true, *dtype});
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  compat::set_autocast(type_, previous_);
  at::autocast::clear_cache();
}

LossScaler::LossScaler(const PrecisionConfig& config, bool enabled)
    : config_(config), enabled_(enabled), scale_(enabled ? config.initial_scale : 1.0) {}

void LossScaler::unscale(const std::vector<torch::Tensor>& params) const {
  if (scale_ == 1.0) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (!grads.empty()) torch::_foreach_mul_(grads, 1.0 / scale_);  // one multi-tensor kernel
}

void LossScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    scale_ *= config_.backoff_factor;
    growth_tracker_ = 0;
    return;
  }
  if (++growth_tracker_ >= config_.growth_interval) {
    const double grown = scale_ * config_.growth_factor;
    if (std::isfinite(grown)) scale_ = grown;
    growth_tracker_ = 0;
  }
}

c10::IValue LossScaler::state() const {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("scale", scale_);
  dict.insert("growth_tracker", growth_tracker_);
  return dict;
}

void LossScaler::load_state(const c10::IValue& state, const std::string& origin) {
  SCORCH_CHECK(state.isGenericDict(), origin, ": 'loss_scaler' should be a dict, got ",
               state.tagKind());
  const auto dict = state.toGenericDict();
  const auto scale = dict.find("scale");
  const auto tracker = dict.find("growth_tracker");
  SCORCH_CHECK(scale != dict.end() && scale->value().isDouble() && tracker != dict.end() &&
                   tracker->value().isInt(),
               origin, ": 'loss_scaler' needs 'scale' (float) and 'growth_tracker' (int)");
  const double s = scale->value().toDouble();
  SCORCH_CHECK(std::isfinite(s) && s > 0, origin, ": loss scale ", s, " is not a positive number");
  if (!enabled_) return;  // a run switched from fp16 to bf16/fp32 has no scale
  scale_ = s;
  growth_tracker_ = tracker->value().toInt();
}

std::vector<std::string> nonfinite_tensor_names(
    const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named)
    if (t.defined() && !torch::isfinite(t).all().item<bool>()) out.push_back(name);
  return out;
}

}  // namespace scorch
