// The variance-preserving SDE (Song et al. 2021, eq. 32; sde_lib.py VPSDE):
// dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw, beta(t) = beta_min + t (beta_max - beta_min),
// with the DDPM discretization x_{i+1} = sqrt(alpha_i) x_i + sqrt(beta_i) z (Ho et al. 2020).
#include <cmath>

#include "core/device_cache.h"
#include "core/sample_noise.h"
#include "sde/schedules.h"
#include "sde/sde.h"

namespace scorch {

VPSde::VPSde(double beta_min, double beta_max, int64_t num_scales)
    : Sde(num_scales), beta_0_(beta_min), beta_1_(beta_max) {
  TORCH_CHECK(num_scales >= 1 && beta_min >= 0.0 && beta_max >= beta_min,
              "VPSde: need 0 <= beta_min <= beta_max and N >= 1");
  const double n = static_cast<double>(num_scales);
  discrete_betas_ = linear_beta_schedule(num_scales, beta_min / n, beta_max / n);
  alphas_ = 1.0 - discrete_betas_;
  alphas_cumprod_ = torch::cumprod(alphas_, 0);
}

DriftDiffusion VPSde::sde(const torch::Tensor& x, const torch::Tensor& t) const {
  const auto beta_t = beta_0_ + t.to(x.scalar_type()) * (beta_1_ - beta_0_);
  return {-0.5 * batch_view(beta_t, x) * x, torch::sqrt(beta_t)};
}

Marginal VPSde::marginal_prob(const torch::Tensor& x, const torch::Tensor& t) const {
  // std = sqrt(1 - m^2); expm1 keeps it accurate at small t (same formula).
  const auto lmc = vp_log_mean_coeff(t.to(x.scalar_type()), beta_0_, beta_1_);
  return {batch_view(torch::exp(lmc), x) * x, torch::sqrt(-torch::expm1(2.0 * lmc))};
}

torch::Tensor VPSde::prior_sampling(at::IntArrayRef shape,
                                    const torch::TensorOptions& options) const {
  return sample_randn(shape, options);
}

torch::Tensor VPSde::prior_logp(const torch::Tensor& z) const {
  return standard_normal_logp(z);
}

DriftDiffusion VPSde::discretize(const torch::Tensor& x, const torch::Tensor& t) const {
  // f = (sqrt(alpha_i) - 1) x, G = sqrt(beta_i); tables indexed on t's device.
  const auto level = discrete_level(t, num_scales());
  const auto beta = on_device(discrete_betas_, t.device()).index_select(0, level);
  const auto alpha = on_device(alphas_, t.device()).index_select(0, level);
  const auto sqrt_alpha = batch_view(torch::sqrt(alpha).to(x.scalar_type()), x);
  return {sqrt_alpha * x - x, torch::sqrt(beta).to(x.scalar_type())};
}

}  // namespace scorch
