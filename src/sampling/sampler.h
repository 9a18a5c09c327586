// One entry point for every sampler, chosen by sampling.method: pc (the
// predictor-corrector family, pc_sampler.h), ode (probability-flow ODE with
// sampling.ode_method, ode_sampler.h), edm (Karras et al. Heun with the rho
// schedule, edm_sampler.h), ddim (VP only, ddim.h), dpm_solver_pp (DPM-Solver++
// multistep, dpm_solver.h) and unipc (UniPC, unipc.h).
#pragma once

#include <torch/torch.h>

#include "sampling/pc_sampler.h"
#include "sampling/sigma_denoiser.h"

namespace scorch {

struct Config;

// Samples `shape` (batch first) in the model's data space with the sampler
// config.sampling names, on `tensor_options`' device, from LibTorch's default
// generator. `denoiser` (optional; make_precond_denoiser) is the model's own
// D, which the samplers that step in sigma (edm, dpm_solver_pp, unipc) use in
// place of the D they derive from `score`. Throws scorch::Error for an unknown
// or unsuitable method.
SampleResult sample_from_config(const Config& config, const Sde& sde, const ScoreFn& score,
                                at::IntArrayRef shape, const torch::TensorOptions& tensor_options,
                                const ProgressFn& progress = {}, const Denoiser& denoiser = {});

// The shape of one sample: [C, H, W] for images, [D] for vectors.
std::vector<int64_t> sample_shape(const Config& config);

}  // namespace scorch
