// The sub-VP SDE (Song et al. 2021, eq. 34; sde_lib.py subVPSDE): the VP drift with
// g(t) = sqrt(beta(t) (1 - exp(-2 beta_min t - (beta_max - beta_min) t^2))), so the
// marginal variance is (1 - m^2)^2. Discretized by the base Euler–Maruyama form.
#include <cmath>

#include "core/sample_noise.h"
#include "sde/sde.h"

namespace scorch {

SubVPSde::SubVPSde(double beta_min, double beta_max, int64_t num_scales)
    : Sde(num_scales), beta_0_(beta_min), beta_1_(beta_max) {
  TORCH_CHECK(num_scales >= 1 && beta_min >= 0.0 && beta_max >= beta_min,
              "SubVPSde: need 0 <= beta_min <= beta_max and N >= 1");
}

DriftDiffusion SubVPSde::sde(const torch::Tensor& x, const torch::Tensor& t) const {
  const auto tt = t.to(x.scalar_type());
  const auto beta_t = beta_0_ + tt * (beta_1_ - beta_0_);
  // discount = 1 - exp(-2 beta_min t - (beta_max - beta_min) t^2) = 1 - m(t)^4, via expm1.
  const auto discount = -torch::expm1(-2.0 * beta_0_ * tt - (beta_1_ - beta_0_) * tt * tt);
  return {-0.5 * batch_view(beta_t, x) * x, torch::sqrt(beta_t * discount)};
}

Marginal SubVPSde::marginal_prob(const torch::Tensor& x, const torch::Tensor& t) const {
  // std = 1 - m^2 (no square root: the variance is (1 - m^2)^2).
  const auto lmc = vp_log_mean_coeff(t.to(x.scalar_type()), beta_0_, beta_1_);
  return {batch_view(torch::exp(lmc), x) * x, -torch::expm1(2.0 * lmc)};
}

torch::Tensor SubVPSde::prior_sampling(at::IntArrayRef shape,
                                       const torch::TensorOptions& options) const {
  return sample_randn(shape, options);
}

torch::Tensor SubVPSde::prior_logp(const torch::Tensor& z) const {
  return standard_normal_logp(z);
}

}  // namespace scorch
