// Predictor–corrector sampling (Song et al. 2021, Alg. 2-3; score_sde_pytorch
// sampling.py), with the reference's crashes fixed: the probability-flow
// diffusion is a zero tensor, and Langevin correctors use alpha = 1 on sub-VP
// (no discrete alphas there).
#include "core/device_cache.h"
#include "sampling/pc_sampler.h"

#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "core/sample_noise.h"

namespace scorch {
namespace {

// [B] -> [B, 1, ...] to broadcast over x.
torch::Tensor bcast(const torch::Tensor& v, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = v.size(0);
  return v.view(shape);
}

// Discrete level index i = floor(t (N-1) / T), as score_sde's timestep.
torch::Tensor level_index(const Sde& sde, const torch::Tensor& t) {
  return (t * static_cast<double>(sde.num_scales() - 1)).to(torch::kLong);
}

// Langevin step-size factor alpha: 1 - beta_i for VP, 1 otherwise.
torch::Tensor langevin_alpha(const Sde& sde, const torch::Tensor& t) {
  if (sde.kind() == SdeKind::kVP) {
    const auto& vp = static_cast<const VPSde&>(sde);
    return on_device(vp.alphas(), t.device()).index_select(0, level_index(sde, t)).to(t.dtype());
  }
  return torch::ones_like(t);
}

}  // namespace

PCStep pc_predictor_step(const Sde& sde, const ScoreFn& score, const torch::Tensor& x, const torch::Tensor& t,
             const PCOptions& o) {
  switch (o.predictor) {
    case Predictor::kNone:
      return {x, x};
    case Predictor::kEulerMaruyama: {
      const double dt = -1.0 / static_cast<double>(o.num_steps);
      auto rev = sde.reverse_sde(score, x, t, o.probability_flow);
      auto x_mean = x + rev.drift * dt;
      auto z = sample_randn_like(x);
      return {x_mean + bcast(rev.diffusion, x) * std::sqrt(-dt) * z, x_mean};
    }
    case Predictor::kReverseDiffusion: {
      auto rev = sde.reverse_discretize(score, x, t, o.probability_flow);
      auto x_mean = x - rev.drift;
      auto z = sample_randn_like(x);
      return {x_mean + bcast(rev.diffusion, x) * z, x_mean};
    }
    case Predictor::kAncestral: {
      const auto i = level_index(sde, t);
      auto s = score(x, t);
      if (sde.kind() == SdeKind::kVE) {
        const auto& ve = static_cast<const VESde&>(sde);
        auto sig = on_device(ve.discrete_sigmas(), x.device());
        auto sigma = sig.index_select(0, i).to(x.dtype());
        auto prev = torch::where(i == 0, torch::zeros_like(sigma),
                                 sig.index_select(0, (i - 1).clamp_min(0)).to(x.dtype()));
        auto x_mean = x + bcast(sigma.pow(2) - prev.pow(2), x) * s;
        auto std = torch::sqrt(prev.pow(2) * (sigma.pow(2) - prev.pow(2)) / sigma.pow(2));
        return {x_mean + bcast(std, x) * sample_randn_like(x), x_mean};
      }
      const auto& vp = static_cast<const VPSde&>(sde);
      auto beta = on_device(vp.discrete_betas(), x.device()).index_select(0, i).to(x.dtype());
      auto x_mean = (x + bcast(beta, x) * s) / bcast(torch::sqrt(1 - beta), x);
      return {x_mean + bcast(torch::sqrt(beta), x) * sample_randn_like(x), x_mean};
    }
  }
  TORCH_CHECK(false, "unknown predictor");
}

PCStep pc_corrector_step(const Sde& sde, const ScoreFn& score, const torch::Tensor& x_in,
                         const torch::Tensor& t, const PCOptions& o) {
  torch::Tensor x = x_in;
  if (o.corrector == Corrector::kNone) return {x, x};
  const auto alpha = langevin_alpha(sde, t);
  torch::Tensor x_mean = x;
  for (int64_t k = 0; k < o.n_steps_each; ++k) {
    auto grad = score(x, t);
    auto z = sample_randn_like(x);
    torch::Tensor step_size;
    if (o.corrector == Corrector::kLangevin) {
      step_size = langevin_step_size(grad, z, alpha, o.snr, o.batch_sum);
    } else {
      auto std = sde.marginal_prob(torch::zeros_like(x), t).std;
      step_size = 2 * alpha * (o.snr * std).pow(2);
    }
    x_mean = x + bcast(step_size, x) * grad;
    x = x_mean + bcast(torch::sqrt(2 * step_size), x) * z;
  }
  return {x, x_mean};
}

torch::Tensor langevin_step_size(const torch::Tensor& grad, const torch::Tensor& z,
                                 const torch::Tensor& alpha, double snr, const BatchSum& batch_sum) {
  // Local sums of the per-sample norms and the local count, summed over
  // processes in one call: [sum |g|, sum |z|, b] in float64.
  auto local = torch::stack({grad.reshape({grad.size(0), -1}).norm(2, 1).to(torch::kDouble).sum(),
                             z.reshape({z.size(0), -1}).norm(2, 1).to(torch::kDouble).sum(),
                             torch::full({}, static_cast<double>(grad.size(0)),
                                         grad.options().dtype(torch::kDouble))});
  auto total = batch_sum ? batch_sum(local) : local;
  auto grad_norm = total[0] / total[2], noise_norm = total[1] / total[2];
  return (2 * alpha * (snr * noise_norm / grad_norm).pow(2).to(alpha.scalar_type()));
}

PCOptions pc_options_from_config(const SamplingConfig& s, double eps, int64_t num_steps) {
  PCOptions o;
  o.predictor = s.predictor;
  o.corrector = s.corrector;
  o.snr = s.snr;
  o.n_steps_each = s.n_steps_each;
  o.noise_removal = s.noise_removal;
  o.probability_flow = s.probability_flow;
  o.eps = eps;
  o.num_steps = num_steps;
  return o;
}

SampleResult pc_sample(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                       const torch::TensorOptions& tensor_options, const PCOptions& o,
                       const ProgressFn& progress) {
  TORCH_CHECK(o.num_steps >= 1, "pc_sample needs num_steps >= 1");
  if (o.predictor == Predictor::kAncestral)
    SCORCH_CHECK(sde.kind() != SdeKind::kSubVP && !o.probability_flow,
                 "sampling.predictor=ancestral_sampling works with vesde or vpsde and "
                 "sampling.probability_flow=false");
  torch::NoGradGuard no_grad;
  auto x = sde.prior_sampling(shape, tensor_options);
  auto x_mean = x;
  // ts = linspace(T, eps, N) in float64, then to the working dtype per step.
  auto ts = torch::linspace(sde.T(), o.eps, o.num_steps, torch::kDouble);
  const int64_t b = shape[0];
  for (int64_t i = 0; i < o.num_steps; ++i) {
    auto t = torch::full({b}, ts[i].item<double>(), tensor_options);
    auto c = pc_corrector_step(sde, score, x, t, o);
    auto p = pc_predictor_step(sde, score, c.x, t, o);
    x = p.x;
    x_mean = p.x_mean;
    if (progress) progress(i + 1, o.num_steps);
  }
  const int64_t per_step = (o.corrector == Corrector::kNone ? 0 : o.n_steps_each) +
                           (o.predictor == Predictor::kNone ? 0 : 1);
  return {o.noise_removal ? x_mean : x, o.num_steps * per_step};
}

torch::Tensor pc_trajectory(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                            const torch::TensorOptions& tensor_options, const PCOptions& o) {
  auto x = sde.prior_sampling(shape, tensor_options);
  std::vector<torch::Tensor> states{x.cpu()};
  const auto times = torch::linspace(1.0, o.eps, o.num_steps, tensor_options.dtype(torch::kDouble));
  for (int64_t i = 0; i < o.num_steps; ++i) {
    const auto t = torch::full({shape[0]}, times[i].item<double>(), tensor_options);
    PCStep step = pc_corrector_step(sde, score, x, t, o);
    step = pc_predictor_step(sde, score, step.x, t, o);
    x = step.x;
    const bool last = i + 1 == o.num_steps;
    states.push_back((last && o.noise_removal ? step.x_mean : step.x).cpu());
  }
  return torch::stack(states, 0);
}

}  // namespace scorch
