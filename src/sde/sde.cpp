// The SDE base class: Euler–Maruyama discretization, the reverse-time SDE and
// probability-flow ODE (Song et al. 2021, eqs. 6 and 13; score_sde_pytorch
// sde_lib.py SDE.discretize / SDE.reverse), and the factory from the config.
#include "sde/sde.h"

#include <cmath>

#include "core/config.h"
#include "core/error.h"

namespace scorch {

torch::Tensor batch_view(const torch::Tensor& v, const torch::Tensor& like) {
  TORCH_CHECK(v.dim() == 1 && like.dim() >= 1 && v.size(0) == like.size(0),
              "batch_view: per-sample value ", v.sizes(), " does not match batch ", like.sizes());
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = v.size(0);
  return v.view(shape);
}

torch::Tensor vp_log_mean_coeff(const torch::Tensor& t, double beta_min, double beta_max) {
  return -0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min;
}

torch::Tensor standard_normal_logp(const torch::Tensor& z) {
  const double dim = static_cast<double>(z[0].numel());
  return -0.5 * dim * std::log(2.0 * M_PI) - z.flatten(1).pow(2).sum(1) / 2.0;
}

torch::Tensor discrete_level(const torch::Tensor& t, int64_t num_scales) {
  // The reference truncates toward zero; for t >= 0 that is floor.
  auto level = (t * static_cast<double>(num_scales - 1)).to(torch::kLong);
  return level.clamp(0, num_scales - 1);
}

DriftDiffusion Sde::discretize(const torch::Tensor& x, const torch::Tensor& t) const {
  // x_{i+1} = x_i + f(x_i, t_i) dt + g(t_i) sqrt(dt) z with dt = 1 / N.
  const double dt = 1.0 / static_cast<double>(num_scales());
  auto dd = sde(x, t);
  return {dd.drift * dt, dd.diffusion * std::sqrt(dt)};
}

namespace {
// The reverse of a forward (drift, diffusion) pair: drift - g^2 s (halved
// for the probability flow, which also has no noise).
DriftDiffusion reverse_of(const DriftDiffusion& forward, const ScoreFn& score,
                          const torch::Tensor& x, const torch::Tensor& t, bool probability_flow) {
  const double weight = probability_flow ? 0.5 : 1.0;
  auto g2 = batch_view(forward.diffusion * forward.diffusion, x);
  auto drift = forward.drift - g2 * score(x, t) * weight;
  auto diffusion = probability_flow ? torch::zeros_like(forward.diffusion) : forward.diffusion;
  return {drift, diffusion};
}
}  // namespace

DriftDiffusion Sde::reverse_sde(const ScoreFn& score, const torch::Tensor& x,
                                const torch::Tensor& t, bool probability_flow) const {
  // dx = [f - g^2 s] dt + g dw-bar.
  return reverse_of(sde(x, t), score, x, t, probability_flow);
}

DriftDiffusion Sde::reverse_discretize(const ScoreFn& score, const torch::Tensor& x,
                                       const torch::Tensor& t, bool probability_flow) const {
  // rev_f = f - G^2 s, rev_G = G.
  return reverse_of(discretize(x, t), score, x, t, probability_flow);
}

std::shared_ptr<Sde> make_sde(const Config& config) {
  const auto& m = config.model;  // validated: the noise schedule fits the SDE
  switch (config.training.sde) {
    case SdeKind::kVE:
      return std::make_shared<VESde>(m.sigma_min, m.sigma_max, m.num_scales);
    case SdeKind::kVP:
      return std::make_shared<VPSde>(m.beta_min, m.beta_max, m.num_scales);
    case SdeKind::kSubVP:
      return std::make_shared<SubVPSde>(m.beta_min, m.beta_max, m.num_scales);
  }
  TORCH_CHECK(false, "make_sde: unknown training.sde");
}

}  // namespace scorch
