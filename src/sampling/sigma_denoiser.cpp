// The denoiser of a score SDE in the sigma parameterisation and the noise
// levels of the multistep samplers (see sigma_denoiser.h).
#include "sampling/sigma_denoiser.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "sampling/edm_sampler.h"

namespace scorch {

Denoiser sde_denoiser(const Sde& sde, const ScoreFn& score, torch::ScalarType model_dtype,
                      int64_t* nfe) {
  return [&sde, &score, model_dtype, nfe](const torch::Tensor& x_hat, double sigma) {
    const double t = std::clamp(edm_time_of_sigma(sde, sigma), 0.0, sde.T());
    auto one = torch::ones({1}, torch::kDouble);
    const double m =
        sde.marginal_prob(one, torch::full({1}, t, torch::kDouble)).mean.item<double>();
    auto tt = torch::full({x_hat.size(0)}, t, x_hat.options().dtype(model_dtype));
    if (nfe) ++*nfe;
    auto s = score((x_hat * m).to(model_dtype), tt).to(torch::kDouble);
    return x_hat + s * (sigma * sigma * m);
  };
}

torch::Tensor multistep_sigmas(const Sde& sde, StepSchedule schedule, int64_t num_steps, double eps,
                               double rho) {
  SCORCH_CHECK(num_steps >= 1, "multistep sampler: sampling.num_steps=", num_steps,
               " must be >= 1");
  SCORCH_CHECK(eps > 0 && eps < sde.T(), "multistep sampler: sampling.eps=", eps,
               " must lie in (0, ", sde.T(), ")");
  const double sigma_max = edm_sigma_of_time(sde, sde.T());
  const double sigma_min = edm_sigma_of_time(sde, eps);
  switch (schedule) {
    case StepSchedule::kKarras:
      return edm_sigma_steps(num_steps, sigma_min, sigma_max, rho);
    case StepSchedule::kLogSnr:
    case StepSchedule::kTime: {
      auto sigmas = torch::zeros({num_steps + 1}, torch::kDouble);
      auto acc = sigmas.accessor<double, 1>();
      for (int64_t i = 0; i < num_steps; ++i) {
        const double frac = num_steps == 1 ? 0.0 : static_cast<double>(i) / (num_steps - 1);
        acc[i] =
            schedule == StepSchedule::kLogSnr
                ? std::exp(std::log(sigma_max) + frac * (std::log(sigma_min) - std::log(sigma_max)))
                : edm_sigma_of_time(sde, sde.T() + frac * (eps - sde.T()));
      }
      return sigmas;
    }
  }
  TORCH_CHECK(false, "multistep_sigmas: unknown StepSchedule");
}

std::vector<double> checked_levels(const torch::Tensor& z, const torch::Tensor& sigmas,
                                   const char* who) {
  TORCH_CHECK(z.dim() >= 1 && z.size(0) >= 1, who, " needs z [B, ...]");
  TORCH_CHECK(sigmas.dim() == 1 && sigmas.size(0) >= 2, who, " needs sigmas [N + 1]");
  const auto s = sigmas.to(torch::kCPU, torch::kDouble).contiguous();
  std::vector<double> levels(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
  TORCH_CHECK(levels.back() == 0, who, ": the last level must be 0");
  return levels;
}

}  // namespace scorch
