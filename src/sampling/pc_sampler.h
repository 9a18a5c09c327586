// The predictor–corrector sampler of Song et al. 2021 (Algorithms 2–3),
// as score_sde_pytorch sampling.py runs it: x ~ prior, t_i = linspace(1, eps, N),
// each step runs the corrector, then the predictor; the last step's noise-free
// mean is returned when noise_removal is on.
#pragma once

#include "core/choices.h"
#include <torch/torch.h>

#include <functional>
#include <memory>

#include "sde/sde.h"

namespace scorch {

struct SamplingConfig;



// Sums a tensor over every process sampling one batch together (an
// all-reduce); empty means one process. Langevin's batch-mean norms go
// through it, so the step size does not depend on how the batch is split.
using BatchSum = std::function<torch::Tensor(const torch::Tensor&)>;

struct PCOptions {
  Predictor predictor = Predictor::kEulerMaruyama;
  Corrector corrector = Corrector::kNone;
  double snr = 0.16;
  int64_t n_steps_each = 1;
  bool noise_removal = true;
  bool probability_flow = false;
  double eps = 1e-3;  // last time
  int64_t num_steps = 1000;
  BatchSum batch_sum;  // see BatchSum
};

// Langevin step size (score_sde LangevinCorrector): eps = 2 alpha (snr n / g)^2,
// where g and n are the means over the whole sampling batch (all processes,
// through batch_sum) of the per-sample L2 norms of grad and of the noise z.
// grad, z: [b, ...]; alpha: [b]. Returns [b].
torch::Tensor langevin_step_size(const torch::Tensor& grad, const torch::Tensor& z,
                                 const torch::Tensor& alpha, double snr,
                                 const BatchSum& batch_sum = {});

PCOptions pc_options_from_config(const SamplingConfig& sampling, double eps, int64_t num_steps);

struct SampleResult {
  torch::Tensor x;  // [shape], in the model's (scaled) data space
  int64_t nfe = 0;  // score evaluations per sample
};

// One update of the PC sampler at time t [b]: x and its noise-free mean.
struct PCStep {
  torch::Tensor x, x_mean;
};
// The corrector's n_steps_each updates (x_mean = x when there is no corrector).
PCStep pc_corrector_step(const Sde& sde, const ScoreFn& score, const torch::Tensor& x,
                         const torch::Tensor& t, const PCOptions& options);
// One predictor update.
PCStep pc_predictor_step(const Sde& sde, const ScoreFn& score, const torch::Tensor& x,
                         const torch::Tensor& t, const PCOptions& options);

// Called after each step with (step index, num_steps); may be empty.
using ProgressFn = std::function<void(int64_t, int64_t)>;

// Every state of the PC sampler's path from the prior (pc_sample's loop):
// [num_steps + 1, shape...] on the CPU, the last the noise-free mean with
// options.noise_removal. For plots of sampling trajectories.
torch::Tensor pc_trajectory(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                            const torch::TensorOptions& tensor_options, const PCOptions& options);

// Samples `shape` from the reverse process of `sde` driven by `score`, on
// `options`' device and dtype, using LibTorch's default generator.
SampleResult pc_sample(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                       const torch::TensorOptions& tensor_options, const PCOptions& options,
                       const ProgressFn& progress = {});

}  // namespace scorch
