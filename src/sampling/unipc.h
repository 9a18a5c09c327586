// UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework
// for Fast Sampling of Diffusion Models", Algorithms 2-3 with B(h) = bh2 =
// e^h - 1), multistep, data prediction, in the sigma parameterisation of
// sigma_denoiser.h (lambda = -ln sigma; the VP form of the paper divided by
// alpha). With h = lambda_t - lambda_s, D_0 the denoised at s and earlier
// D_k at s_k (r_k = (lambda_{s_k} - lambda_s) / h), h_phi_1 = expm1(-h):
//   UniP-p:  x_t = (sigma_t/sigma_s) x_s - h_phi_1 D_0
//                  - B(h) sum_{k<p} rho_k (D_k - D_0) / r_k,
//   UniC-p:  the same from x_s with one more term, rho_p (D(x_t; sigma_t) - D_0),
//            which raises the order of the step to p + 1,
// where rho solves R rho = b, R_{ik} = r_k^(i-1) (r_p = 1), b_i = i! (-h)
// phi_{i+1}(-h) / B(h) with phi_1(x) = expm1(x)/x, phi_{k+1}(x) = (phi_k(x) - 1/k!)/x
// (the predictor's 2x2 system is fixed at rho = 1/2 for p = 2, and the
// corrector's at rho = 1/2 for p = 1, as the reference implementations do).
//
// The schedule of orders is that of diffusers' UniPCMultistepScheduler with
// lower_order_final: step i predicts with order min(order, i + 1, N - i); the
// corrector of step i (i >= 1) reuses the evaluation D(x_i; sigma_i) that the
// next predictor needs, at the order of the predictor it corrects. There is no
// corrector after the last step (it would need one more evaluation): the last
// step, to sigma_N = 0, returns D(x_{N-1}; sigma_{N-1}). NFE = N.
//
//   UniPcOptions o;  o.order = 2;
//   auto r = unipc_sample(*sde, score, {64, 3, 32, 32}, torch::kFloat32, o);  // r.nfe == 20
#pragma once

#include <torch/torch.h>

#include "core/choices.h"
#include "sampling/pc_sampler.h"  // SampleResult
#include "sampling/sigma_denoiser.h"
#include "sde/sde.h"

namespace scorch {

struct UniPcOptions {
  int64_t order = 2;  // of the predictor: 1, 2 or 3
  // Noise levels for unipc_sample (multistep_sigmas).
  int64_t num_steps = 20;
  StepSchedule schedule = StepSchedule::kLogSnr;
  double rho = 7.0;
  double eps = 1e-3;
  // unipc_sample: the model's own denoiser (make_precond_denoiser for
  // model.precond) in place of the one derived from the score.
  Denoiser denoiser;
};

// Samples `shape` ([B, ...]) from latents z ~ N(0, I) (sample_randn) on
// `tensor_options`' device and dtype, through sde_denoiser. Deterministic
// given z. Throws scorch::Error for bad options.
SampleResult unipc_sample(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                          const torch::TensorOptions& tensor_options, const UniPcOptions& options);

// The same for a given denoiser, latents z [B, ...] (x_hat_0 = sigma_0 z) and
// levels sigmas float64 [N + 1] (decreasing, sigma_N = 0, the others > 0).
// Updates run in float64; the result is float64. nfe counts denoiser calls (N).
SampleResult unipc_from(const Denoiser& denoiser, const torch::Tensor& z,
                        const torch::Tensor& sigmas, const UniPcOptions& options);

}  // namespace scorch
