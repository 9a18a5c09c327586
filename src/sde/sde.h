// Score SDEs of Song et al. 2021 ("Score-Based Generative Modeling through
// Stochastic Differential Equations"), exactly as yang-song/score_sde_pytorch
// sde_lib.py defines them: VE, VP and sub-VP, their marginals, priors,
// discretizations, reverse SDE and probability-flow ODE.
//
// Shapes: x is [B, ...] (any trailing dims), t is [B] with values in [0, T=1].
// Per-sample scalars (diffusion, std) are returned as [B]; callers broadcast.
#pragma once

#include "core/choices.h"
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

namespace scorch {

struct Config;


// s(x, t): the score estimate, [B, ...] -> [B, ...].
using ScoreFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t)>;

struct DriftDiffusion {
  torch::Tensor drift;      // [B, ...]
  torch::Tensor diffusion;  // [B]
};

struct Marginal {
  torch::Tensor mean;  // [B, ...]
  torch::Tensor std;   // [B]
};

class Sde {
 public:
  explicit Sde(int64_t num_scales) : num_scales_(num_scales) {}
  virtual ~Sde() = default;

  virtual SdeKind kind() const = 0;
  int64_t num_scales() const { return num_scales_; }  // N
  double T() const { return 1.0; }

  // dx = f(x, t) dt + g(t) dw.
  virtual DriftDiffusion sde(const torch::Tensor& x, const torch::Tensor& t) const = 0;
  // p_0t(x(t) | x(0)) = N(mean, std^2 I).
  virtual Marginal marginal_prob(const torch::Tensor& x, const torch::Tensor& t) const = 0;
  // Samples of p_T, [shape], on `options`' device and dtype.
  virtual torch::Tensor prior_sampling(at::IntArrayRef shape,
                                       const torch::TensorOptions& options) const = 0;
  // log p_T(z) per sample, [B].
  virtual torch::Tensor prior_logp(const torch::Tensor& z) const = 0;
  // One step of the N-level discretization x_{i+1} = x_i + f_i + G_i z_i.
  // Default: Euler–Maruyama, f = drift / N, G = g / sqrt(N).
  virtual DriftDiffusion discretize(const torch::Tensor& x, const torch::Tensor& t) const;

  // Reverse-time SDE: drift = f - g^2 s (x 1/2 for the probability flow),
  // diffusion = g (0 for the probability flow; a zero tensor, never a float).
  DriftDiffusion reverse_sde(const ScoreFn& score, const torch::Tensor& x, const torch::Tensor& t,
                             bool probability_flow) const;
  // Reverse of discretize: rev_f = f - G^2 s (x 1/2), rev_G = G (0 for pf).
  DriftDiffusion reverse_discretize(const ScoreFn& score, const torch::Tensor& x,
                                    const torch::Tensor& t, bool probability_flow) const;

 private:
  int64_t num_scales_;
};

// VE: sigma(t) = sigma_min (sigma_max / sigma_min)^t, f = 0.
class VESde : public Sde {
 public:
  VESde(double sigma_min, double sigma_max, int64_t num_scales);
  SdeKind kind() const override { return SdeKind::kVE; }
  DriftDiffusion sde(const torch::Tensor& x, const torch::Tensor& t) const override;
  Marginal marginal_prob(const torch::Tensor& x, const torch::Tensor& t) const override;
  torch::Tensor prior_sampling(at::IntArrayRef shape,
                               const torch::TensorOptions& options) const override;
  torch::Tensor prior_logp(const torch::Tensor& z) const override;
  // SMLD form: f = 0, G = sqrt(sigma_i^2 - sigma_{i-1}^2), sigma_{-1} = 0.
  DriftDiffusion discretize(const torch::Tensor& x, const torch::Tensor& t) const override;

  double sigma_min() const { return sigma_min_; }
  double sigma_max() const { return sigma_max_; }
  torch::Tensor sigma(const torch::Tensor& t) const;  // sigma(t), [B]
  // exp(linspace(ln sigma_min, ln sigma_max, N)), ascending, float64 [N].
  const torch::Tensor& discrete_sigmas() const { return discrete_sigmas_; }

 private:
  double sigma_min_, sigma_max_;
  torch::Tensor discrete_sigmas_;
};

// VP: beta(t) = beta_min + t (beta_max - beta_min), f = -beta x / 2, g = sqrt(beta).
class VPSde : public Sde {
 public:
  VPSde(double beta_min, double beta_max, int64_t num_scales);
  SdeKind kind() const override { return SdeKind::kVP; }
  DriftDiffusion sde(const torch::Tensor& x, const torch::Tensor& t) const override;
  Marginal marginal_prob(const torch::Tensor& x, const torch::Tensor& t) const override;
  torch::Tensor prior_sampling(at::IntArrayRef shape,
                               const torch::TensorOptions& options) const override;
  torch::Tensor prior_logp(const torch::Tensor& z) const override;
  // DDPM form: f = (sqrt(alpha_i) - 1) x, G = sqrt(beta_i).
  DriftDiffusion discretize(const torch::Tensor& x, const torch::Tensor& t) const override;

  double beta_min() const { return beta_0_; }
  double beta_max() const { return beta_1_; }
  // Lookup tables, float64 [N]: beta_k = linspace(beta_min/N, beta_max/N, N),
  // alpha_k = 1 - beta_k, alpha_bar = cumprod(alpha).
  const torch::Tensor& discrete_betas() const { return discrete_betas_; }
  const torch::Tensor& alphas() const { return alphas_; }
  const torch::Tensor& alphas_cumprod() const { return alphas_cumprod_; }

 private:
  double beta_0_, beta_1_;
  torch::Tensor discrete_betas_, alphas_, alphas_cumprod_;
};

// sub-VP: VP drift, g = sqrt(beta (1 - exp(-2 beta_min t - (beta_max - beta_min) t^2))),
// std = 1 - m^2. Discretization is the base Euler–Maruyama form.
class SubVPSde : public Sde {
 public:
  SubVPSde(double beta_min, double beta_max, int64_t num_scales);
  SdeKind kind() const override { return SdeKind::kSubVP; }
  DriftDiffusion sde(const torch::Tensor& x, const torch::Tensor& t) const override;
  Marginal marginal_prob(const torch::Tensor& x, const torch::Tensor& t) const override;
  torch::Tensor prior_sampling(at::IntArrayRef shape,
                               const torch::TensorOptions& options) const override;
  torch::Tensor prior_logp(const torch::Tensor& z) const override;

  double beta_min() const { return beta_0_; }
  double beta_max() const { return beta_1_; }

 private:
  double beta_0_, beta_1_;
};

// training.sde (vesde | vpsde | subvpsde) with model.sigma_min/max, beta_min/max
// and num_scales. Throws scorch::Error naming the key for an unusable value.
std::shared_ptr<Sde> make_sde(const Config& config);

// Reshapes a per-sample value v [B] to [B, 1, ..., 1] so it broadcasts against
// `like` [B, ...]. (score_sde writes v[:, None, None, None].)
torch::Tensor batch_view(const torch::Tensor& v, const torch::Tensor& like);

// The discrete level i = floor(t (N - 1) / T) of score_sde's discretize, as
// int64 [B] on t's device, clamped to [0, N - 1]. Computed in t's dtype, as the
// reference does ((t * (N - 1) / T).long()).
torch::Tensor discrete_level(const torch::Tensor& t, int64_t num_scales);

// ln m(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2, the log mean
// coefficient of VP and sub-VP (Song et al. 2021, eq. 33). t [B] -> [B].
torch::Tensor vp_log_mean_coeff(const torch::Tensor& t, double beta_min, double beta_max);

// log N(z; 0, I) per sample: -(D/2) ln 2 pi - |z|^2 / 2. z [B, ...] -> [B].
torch::Tensor standard_normal_logp(const torch::Tensor& z);

}  // namespace scorch
