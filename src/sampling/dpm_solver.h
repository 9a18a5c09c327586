// DPM-Solver++ multistep (Lu et al. 2022, "DPM-Solver++: Fast Solver for
// Guided Sampling of Diffusion Probabilistic Models", Algorithm 2 and App. B),
// data-prediction form, in the sigma parameterisation of sigma_denoiser.h:
// with lambda = -ln sigma, h = lambda_{i+1} - lambda_i, D_i = D(x_i; sigma_i),
//   first order:  x_{i+1} = (sigma_{i+1}/sigma_i) x_i - expm1(-h) D_i      (= DDIM)
//   2M:  r = h_{i-1}/h,  x_{i+1} = ... - expm1(-h) [(1 + 1/(2r)) D_i - D_{i-1}/(2r)]
//   3M:  with r0 = h_{i-1}/h, r1 = h_{i-2}/h, the divided differences
//        d1 = (D_i - D_{i-1})/r0 + r0/(r0+r1) (...), d2 (Lu et al. eq. of
//        multistep_dpm_solver_third_update), phi_2 = expm1(-h)/h + 1,
//        phi_3 = phi_2/h - 1/2:  x_{i+1} = e^{-h} x_i - expm1(-h) D_i + phi_2 d1 - phi_3 d2.
// The SDE variant (sde = true) is DPM-Solver++(2M/3M) SDE with eta = 1, as
// k-diffusion's sample_dpmpp_2m_sde (midpoint) and sample_dpmpp_3m_sde: h is
// replaced by 2h in the exponential factors and
//   sigma_{i+1} sqrt(-expm1(-2h)) z_i,  z_i ~ N(0, I)
// is added after each step. Step by step the formulas are those of
// k-diffusion's sample_dpmpp_2m (order 2, ODE), sample_dpmpp_2m_sde (order 2,
// SDE, midpoint) and sample_dpmpp_3m_sde (order 3, eta 0 for the ODE, 1 for
// the SDE); order 1 is their shared first-order step. That 3M's d2 is
// h^2 D''/2 against the exact term's h^2 D'', so it converges at order 2,
// with a smaller constant than 2M (tests/sampling/multistep_sampler_test.cpp).
//
// Start and end as in k-diffusion: step i uses order min(order, i + 1) (there
// are only i earlier evaluations), and the last step, to sigma_N = 0, returns
// D(x_{N-1}; sigma_{N-1}) (the first-order step to sigma = 0). NFE = N.
//
//   DpmSolverOptions o;  o.order = 2;
//   auto r = dpm_solver_pp_sample(*sde, score, {64, 3, 32, 32}, torch::kFloat32, o);
//   // r.nfe == 20
#pragma once

#include <torch/torch.h>

#include <functional>

#include "core/choices.h"
#include "sampling/pc_sampler.h"  // SampleResult
#include "sampling/sigma_denoiser.h"
#include "sde/sde.h"

namespace scorch {

// The noise z_i of SDE step i (0-based), shaped like x_hat [B, ...] float64.
using StepNoiseFn = std::function<torch::Tensor(int64_t step, const torch::Tensor& x_hat)>;

struct DpmSolverOptions {
  int64_t order = 2;  // 1, 2 or 3
  bool sde = false;   // the SDE variant (eta = 1)
  // Noise levels for dpm_solver_pp_sample (multistep_sigmas).
  int64_t num_steps = 20;
  StepSchedule schedule = StepSchedule::kLogSnr;
  double rho = 7.0;
  double eps = 1e-3;
  // SDE noise; empty = sample_randn_like (per-sample noise under a
  // PerSampleNoise scope, so samples are reproducible by seed on any number of ranks).
  StepNoiseFn noise;
  // dpm_solver_pp_sample: the model's own denoiser (make_precond_denoiser for
  // model.precond) in place of the one derived from the score.
  Denoiser denoiser;
};

// Samples `shape` ([B, ...]) from latents z ~ N(0, I) (sample_randn) on
// `tensor_options`' device and dtype, through sde_denoiser. Throws
// scorch::Error for bad options.
SampleResult dpm_solver_pp_sample(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                                  const torch::TensorOptions& tensor_options,
                                  const DpmSolverOptions& options);

// The same for a given denoiser, latents z [B, ...] (x_hat_0 = sigma_0 z) and
// levels sigmas float64 [N + 1] (decreasing, sigma_N = 0, the others > 0).
// Updates run in float64; the result is float64 in x_hat = x_0 space. nfe
// counts the denoiser calls (N). Deterministic unless options.sde.
SampleResult dpm_solver_pp_from(const Denoiser& denoiser, const torch::Tensor& z,
                                const torch::Tensor& sigmas, const DpmSolverOptions& options);

}  // namespace scorch
