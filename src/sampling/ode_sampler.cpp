// Probability-flow ODE sampling (Song et al. 2021, eq. 13; score_sde_pytorch
// sampling.py get_ode_sampler).
#include "sampling/ode_sampler.h"

#include "core/error.h"

namespace scorch {

torch::Tensor probability_flow_drift(const Sde& sde, const ScoreFn& score, const torch::Tensor& x,
                                     double t) {
  auto tt = torch::full({x.size(0)}, t, x.options());
  return sde.reverse_sde(score, x, tt, /*probability_flow=*/true).drift;
}

SampleResult ode_sample(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                        const torch::TensorOptions& tensor_options,
                        const OdeSamplerOptions& options) {
  torch::NoGradGuard no_grad;
  return ode_sample_from(sde, score, sde.prior_sampling(shape, tensor_options), options);
}

SampleResult ode_sample_from(const Sde& sde, const ScoreFn& score, const torch::Tensor& x_T,
                             const OdeSamplerOptions& o) {
  SCORCH_CHECK(o.eps > 0 && o.eps < sde.T(), "sampling.eps: ", o.eps, " must lie in (0, ", sde.T(),
               ")");
  TORCH_CHECK(x_T.dim() >= 1 && x_T.size(0) >= 1, "ode_sample_from needs x_T [B, ...]");
  torch::NoGradGuard no_grad;
  const auto dtype = x_T.scalar_type();
  // The solver works on a float64 copy; the score sees the working dtype.
  auto drift = [&](double t, const torch::Tensor& y) {
    return probability_flow_drift(sde, score, y.to(dtype), t).to(torch::kDouble);
  };
  OdeOptions solver;
  solver.method = o.method;
  solver.rtol = o.rtol;
  solver.atol = o.atol;
  solver.num_steps = o.num_steps;
  solver.max_steps = o.max_steps;
  auto solved = ode_solve(drift, x_T.to(torch::kDouble), sde.T(), o.eps, solver);
  auto x = solved.y.to(dtype);
  int64_t nfe = solved.nfe;
  if (o.denoise) {
    // score_sde's denoise_update_fn: ReverseDiffusionPredictor(probability_flow=False)
    // at t = eps, returning x_mean = x - rev_f.
    auto t = torch::full({x.size(0)}, o.eps, x.options());
    x = x - sde.reverse_discretize(score, x, t, /*probability_flow=*/false).drift;
    ++nfe;
  }
  return {x, nfe};
}

}  // namespace scorch
