// The EDM sampler of Karras et al. 2022 ("Elucidating the Design Space of
// Diffusion-Based Generative Models", Algorithm 2): the probability-flow ODE
// dx/dsigma = -sigma grad log p(x; sigma) on the noise levels
//   sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
//   i < N, sigma_N = 0,
// with Heun steps (Euler on the last step, to sigma = 0), and optional
// stochastic churn: before step i, when S_tmin <= sigma_i <= S_tmax, noise is
// added to raise sigma_i to sigma_hat = sigma_i (1 + gamma),
// gamma = min(S_churn / N, sqrt(2) - 1), with std sqrt(sigma_hat^2 - sigma_i^2) S_noise.
// (sigma_hat is capped at the SDE's sigma(T), where its score is defined.)
// NFE = 2N - 1.
//
// Any score SDE: its marginal is x_t = m(t) x_0 + std(t) z (m = 1 for VE), so
// x_hat = x_t / m(t) = x_0 + sigma z with sigma = std(t) / m(t), a VE process in
// sigma. The sampler runs Algorithm 2 on x_hat (EDM's scaling s(t) = m(t)
// divided out), maps each sigma back to the SDE time t(sigma) (closed form per
// SDE, below), and evaluates the score there:
//   grad_{x_hat} log p(x_hat; sigma) = m(t) s(m(t) x_hat, t).
// At sigma = 0, m = 1 and x_hat is the sample. The solution of the ODE is the
// SDE's probability flow; only the discretization differs from ode_sampler.h.
//
//   EdmOptions o;  o.num_steps = 18;
//   auto r = edm_sample(*sde, score, {64, 3, 32, 32}, torch::kFloat32, o);  // r.nfe == 35
#pragma once

#include <torch/torch.h>

#include <limits>

#include "sampling/pc_sampler.h"  // SampleResult
#include "sampling/sigma_denoiser.h"
#include "sde/sde.h"

namespace scorch {

struct EdmOptions {
  int64_t num_steps = 18;  // N >= 1 noise levels before sigma_N = 0
  double rho = 7.0;
  // Noise range; 0 takes the SDE's: sigma_max = sigma(T), sigma_min = sigma(eps).
  double sigma_min = 0.0;
  double sigma_max = 0.0;
  double eps = 1e-3;  // SDE time of the default sigma_min
  // Stochastic churn (Algorithm 2); S_churn = 0 is the deterministic sampler.
  double s_churn = 0.0;
  double s_tmin = 0.0;
  double s_tmax = std::numeric_limits<double>::infinity();
  double s_noise = 1.0;
  // The model's own denoiser (make_precond_denoiser for model.precond): when
  // set, the slope is (x_hat - D(x_hat; sigma)) / sigma from it, as EDM's
  // sampler uses its network; otherwise D comes from the score.
  Denoiser denoiser;
};

// sigma(t) = std(t) / m(t), the noise-to-signal ratio of the SDE's marginal at t.
double edm_sigma_of_time(const Sde& sde, double t);
// Its inverse on [0, T]:
//   VE:     t = ln(sigma / sigma_min) / ln(sigma_max / sigma_min)
//   VP:     m^2 = 1 / (1 + sigma^2)
//   sub-VP: m = (sqrt(sigma^2 + 4) - sigma) / 2      (from std = 1 - m^2)
// and for VP / sub-VP t solves ln m = -t^2 (b1 - b0)/4 - t b0/2:
//   t = (sqrt(b0^2 - 4 (b1 - b0) ln m) - b0) / (b1 - b0).
double edm_time_of_sigma(const Sde& sde, double sigma);

// The N + 1 levels sigma_0 > ... > sigma_{N-1} > sigma_N = 0, float64 [N + 1]
// (N = 1: sigma_0 = sigma_max). Throws scorch::Error for a bad range or rho.
torch::Tensor edm_sigma_steps(int64_t num_steps, double sigma_min, double sigma_max, double rho);

// Samples `shape` ([B, ...]) from latents z ~ N(0, I) drawn with LibTorch's
// default generator on `tensor_options`' device and dtype.
SampleResult edm_sample(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                        const torch::TensorOptions& tensor_options, const EdmOptions& options);

// The same from given latents z [B, ...] ~ N(0, I): x_hat_0 = sigma_0 z.
// Without churn it is deterministic. Updates are computed in float64 (as EDM
// does), the score in z's dtype; the result has z's dtype. Churn noise comes
// from the default generator. Throws scorch::Error for options the SDE cannot
// serve (sigma range beyond sigma(T), eps outside (0, T), bad churn values).
SampleResult edm_sample_from(const Sde& sde, const ScoreFn& score, const torch::Tensor& z,
                             const EdmOptions& options);

}  // namespace scorch
