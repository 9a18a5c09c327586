// DPM-Solver++ multistep, ODE and SDE variants (Lu et al. 2022; the step
// formulas of k-diffusion's sample_dpmpp_2m, _2m_sde and _3m_sde), on the
// denoiser of sigma_denoiser.h. See dpm_solver.h.
#include "sampling/dpm_solver.h"

#include <cmath>

#include "core/error.h"
#include "core/sample_noise.h"

namespace scorch {
namespace {

// The multistep history: the last two denoiser outputs and step sizes in lambda.
struct History {
  torch::Tensor d1, d2;   // D_{i-1}, D_{i-2} (undefined at the start)
  double h1 = 0, h2 = 0;  // lambda_i - lambda_{i-1}, lambda_{i-1} - lambda_{i-2}
};

// One step from sigma to sigma_next > 0 with the denoised d = D(x; sigma),
// eta 0 (ODE) or 1 (SDE). `order` is the configured order; the history
// lowers it at the start.
torch::Tensor dpm_step(const torch::Tensor& x, const torch::Tensor& d, double sigma,
                       double sigma_next, int64_t order, double eta, const History& past) {
  const double h = std::log(sigma) - std::log(sigma_next);
  const double h_eta = h * (1 + eta);
  // (sigma_next / sigma) e^{-eta h} x + (1 - e^{-h (1 + eta)}) D.
  auto out = x * (sigma_next / sigma * std::exp(-eta * h)) + d * -std::expm1(-h_eta);
  if (order == 1 || !past.d1.defined()) return out;
  if (order == 2) {
    // 2M (midpoint form): 0.5 (1 - e^{-h_eta}) / r (D_i - D_{i-1}), r = h_{i-1} / h.
    return out + (d - past.d1) * (0.5 * -std::expm1(-h_eta) / (past.h1 / h));
  }
  const double phi_2 = std::expm1(-h_eta) / h_eta + 1;
  if (!past.d2.defined())  // the second step of 3M: phi_2 (D_i - D_{i-1}) / r
    return out + (d - past.d1) * (phi_2 * h / past.h1);
  const double r0 = past.h1 / h, r1 = past.h2 / h;
  auto d1_0 = (d - past.d1) / r0;
  auto d1_1 = (past.d1 - past.d2) / r1;
  auto d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1));
  auto d2 = (d1_0 - d1_1) / (r0 + r1);
  const double phi_3 = phi_2 / h_eta - 0.5;
  return out + d1 * phi_2 - d2 * phi_3;
}

}  // namespace

SampleResult dpm_solver_pp_from(const Denoiser& denoiser, const torch::Tensor& z,
                                const torch::Tensor& sigmas, const DpmSolverOptions& o) {
  SCORCH_CHECK(o.order >= 1 && o.order <= 3, "sampling.order=", o.order,
               " is not a DPM-Solver++ order; use 1, 2 or 3");
  torch::NoGradGuard no_grad;
  const std::vector<double> levels = checked_levels(z, sigmas, "dpm_solver_pp_from");
  const int64_t n = static_cast<int64_t>(levels.size()) - 1;
  const double eta = o.sde ? 1.0 : 0.0;
  auto x = z.to(torch::kDouble) * levels[0];
  History past;
  int64_t nfe = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double sigma = levels[i], sigma_next = levels[i + 1];
    auto d = denoiser(x, sigma);
    ++nfe;
    if (sigma_next == 0) {  // the denoising step
      x = d;
      break;
    }
    x = dpm_step(x, d, sigma, sigma_next, o.order, eta, past);
    if (o.sde) {
      auto noise = o.noise ? o.noise(i, x) : sample_randn_like(x);
      const double h = std::log(sigma) - std::log(sigma_next);
      x = x + noise * (sigma_next * std::sqrt(-std::expm1(-2 * eta * h)));
    }
    past.d2 = past.d1;
    past.h2 = past.h1;
    past.d1 = d;
    past.h1 = std::log(sigma) - std::log(sigma_next);
  }
  return {x, nfe};
}

SampleResult dpm_solver_pp_sample(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                                  const torch::TensorOptions& tensor_options,
                                  const DpmSolverOptions& o) {
  const auto sigmas = multistep_sigmas(sde, o.schedule, o.num_steps, o.eps, o.rho);
  const auto z = sample_randn(shape, tensor_options);
  auto r = dpm_solver_pp_from(
      o.denoiser ? o.denoiser : sde_denoiser(sde, score, z.scalar_type(), nullptr), z, sigmas, o);
  return {r.x.to(z.scalar_type()), r.nfe};
}

}  // namespace scorch
