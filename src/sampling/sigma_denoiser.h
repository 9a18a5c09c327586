// The sigma parameterisation shared by the multistep samplers (dpm_solver.h,
// unipc.h): the denoiser of a score SDE and the noise levels they step through.
//
// Any score SDE has marginals x_t = m(t) x_0 + std(t) z, so x_hat = x_t / m(t)
// = x_0 + sigma z with sigma = std(t) / m(t) is a VE process in sigma (the
// EDM change of variables, Karras et al. 2022 Sec. 2 and Table 1; for VP,
// m = alpha and sigma = sqrt(1 - alpha^2) / alpha). Its log-SNR is
// lambda = -ln sigma, DPM-Solver's lambda = ln(alpha / sigma_VP) exactly. The
// denoiser (the data prediction of DPM-Solver++ and UniPC, Tweedie's formula)
// is
//   D(x_hat; sigma) = x_hat + sigma^2 grad_{x_hat} log p(x_hat; sigma)
//                   = x_hat + sigma^2 m(t) s(m(t) x_hat, t),  t = t(sigma)
// (edm_time_of_sigma), the score s being the model's (with classifier-free
// guidance when the ScoreFn carries it). An EDM-preconditioned network is a
// denoiser already and plugs into the samplers' *_from functions directly.
//
//   int64_t nfe = 0;
//   Denoiser d = sde_denoiser(*sde, score, torch::kFloat32, &nfe);
//   auto sigmas = multistep_sigmas(*sde, StepSchedule::kKarras, 20, 1e-3, 7.0);  // [21]
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "core/choices.h"
#include "sde/sde.h"

namespace scorch {

// D(x_hat; sigma): x_hat [B, ...] float64 -> [B, ...] float64, sigma > 0.
using Denoiser = std::function<torch::Tensor(const torch::Tensor& x_hat, double sigma)>;

// The denoiser of `score` under `sde` (formula above). The score is evaluated
// in `model_dtype` on x_hat's device; each call adds one to *nfe (if given).
// The closure refers to sde, score and nfe, which must outlive it.
Denoiser sde_denoiser(const Sde& sde, const ScoreFn& score, torch::ScalarType model_dtype,
                      int64_t* nfe);

// The N + 1 noise levels sigma_0 > ... > sigma_{N-1} > sigma_N = 0, float64
// [N + 1], from sigma_max = sigma(T) to sigma_min = sigma(eps):
//   karras:  uniform in sigma^(1/rho) (EDM eq. 5, k-diffusion get_sigmas_karras);
//   log_snr: uniform in lambda = -ln sigma (k-diffusion get_sigmas_exponential);
//   time:    sigma(t_i) with t_i = linspace(T, eps, N), as the DDIM and ODE samplers.
// N = 1 gives [sigma_max, 0]. Throws scorch::Error for N < 1, eps outside
// (0, T) or rho <= 0.
// `sigmas` [N + 1] (N >= 1, the last 0) as host doubles, checked against
// z [B, ...]; `who` names the sampler in the message of a failed check.
std::vector<double> checked_levels(const torch::Tensor& z, const torch::Tensor& sigmas,
                                   const char* who);

torch::Tensor multistep_sigmas(const Sde& sde, StepSchedule schedule, int64_t num_steps, double eps,
                               double rho);

}  // namespace scorch
