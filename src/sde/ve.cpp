// The variance-exploding SDE (Song et al. 2021, eq. 30; sde_lib.py VESDE):
// dx = sigma(t) sqrt(2 ln(sigma_max / sigma_min)) dw, sigma(t) = sigma_min (sigma_max/sigma_min)^t,
// with the SMLD discretization x_{i+1} = x_i + sqrt(sigma_i^2 - sigma_{i-1}^2) z.
#include <cmath>

#include "core/device_cache.h"
#include "core/sample_noise.h"
#include "sde/schedules.h"
#include "sde/sde.h"

namespace scorch {

VESde::VESde(double sigma_min, double sigma_max, int64_t num_scales)
    : Sde(num_scales), sigma_min_(sigma_min), sigma_max_(sigma_max) {
  TORCH_CHECK(num_scales >= 1 && sigma_min > 0.0 && sigma_max > sigma_min,
              "VESde: need 0 < sigma_min < sigma_max and N >= 1");
  discrete_sigmas_ = geometric_sigma_schedule(num_scales, sigma_min, sigma_max);
}

torch::Tensor VESde::sigma(const torch::Tensor& t) const {
  return sigma_min_ * torch::pow(sigma_max_ / sigma_min_, t);
}

DriftDiffusion VESde::sde(const torch::Tensor& x, const torch::Tensor& t) const {
  const auto tt = t.to(x.scalar_type());
  const double rate = std::sqrt(2.0 * (std::log(sigma_max_) - std::log(sigma_min_)));
  return {torch::zeros_like(x), sigma(tt) * rate};
}

Marginal VESde::marginal_prob(const torch::Tensor& x, const torch::Tensor& t) const {
  // As the reference: std = sigma(t), not sqrt(sigma(t)^2 - sigma_min^2).
  return {x, sigma(t.to(x.scalar_type()))};
}

torch::Tensor VESde::prior_sampling(at::IntArrayRef shape,
                                    const torch::TensorOptions& options) const {
  return sample_randn(shape, options) * sigma_max_;
}

torch::Tensor VESde::prior_logp(const torch::Tensor& z) const {
  const double dim = static_cast<double>(z[0].numel());
  const double var = sigma_max_ * sigma_max_;
  const double two_pi = 2.0 * std::acos(-1.0);
  return -0.5 * dim * std::log(two_pi * var) - z.flatten(1).pow(2).sum(1) / (2.0 * var);
}

DriftDiffusion VESde::discretize(const torch::Tensor& x, const torch::Tensor& t) const {
  // The table is moved to t's device before indexing (score_sde issue #43
  // indexes a CPU table with a CUDA index).
  const auto level = discrete_level(t, num_scales());
  const auto table = on_device(discrete_sigmas_, t.device());
  const auto sigma_i = table.index_select(0, level);
  const auto sigma_prev = torch::where(level == 0, torch::zeros_like(sigma_i),
                                       table.index_select(0, (level - 1).clamp_min(0)));
  const auto G = torch::sqrt(sigma_i * sigma_i - sigma_prev * sigma_prev);
  return {torch::zeros_like(x), G.to(x.scalar_type())};
}

}  // namespace scorch
