// EDM sampling (Karras et al. 2022, Algorithm 2 and eq. 5 for the noise
// levels), run on x / m(t) for any score SDE; see edm_sampler.h for the mapping.
#include "sampling/edm_sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/sample_noise.h"

namespace scorch {
namespace {

// m(t) and std(t) of the SDE's marginal at one time, in double.
std::pair<double, double> mean_and_std(const Sde& sde, double t) {
  auto one = torch::ones({1}, torch::kDouble);
  auto marginal = sde.marginal_prob(one, torch::full({1}, t, torch::kDouble));
  return {marginal.mean.item<double>(), marginal.std.item<double>()};
}

// t solving ln m(t) = log_m for the VP / sub-VP mean coefficient
// ln m = -t^2 (b1 - b0) / 4 - t b0 / 2 (the positive root).
double vp_time_of_log_mean(double log_m, double b0, double b1) {
  const double db = b1 - b0;
  if (std::abs(db) < 1e-12) return -2.0 * log_m / b0;
  return (std::sqrt(b0 * b0 - 4.0 * db * log_m) - b0) / db;
}

}  // namespace

double edm_sigma_of_time(const Sde& sde, double t) {
  const auto [m, std] = mean_and_std(sde, t);
  return std / m;
}

double edm_time_of_sigma(const Sde& sde, double sigma) {
  TORCH_CHECK(sigma >= 0, "edm_time_of_sigma needs sigma >= 0, got ", sigma);
  switch (sde.kind()) {
    case SdeKind::kVE: {
      const auto& ve = static_cast<const VESde&>(sde);
      return std::log(sigma / ve.sigma_min()) / std::log(ve.sigma_max() / ve.sigma_min());
    }
    case SdeKind::kVP: {
      const auto& vp = static_cast<const VPSde&>(sde);
      // m^2 = 1 / (1 + sigma^2).
      return vp_time_of_log_mean(-0.5 * std::log1p(sigma * sigma), vp.beta_min(), vp.beta_max());
    }
    case SdeKind::kSubVP: {
      const auto& sub = static_cast<const SubVPSde&>(sde);
      // sigma m = 1 - m^2; m = 2 / (sigma + sqrt(sigma^2 + 4)) avoids cancellation.
      const double m = 2.0 / (sigma + std::sqrt(sigma * sigma + 4.0));
      return vp_time_of_log_mean(std::log(m), sub.beta_min(), sub.beta_max());
    }
  }
  TORCH_CHECK(false, "unknown SdeKind");
}

torch::Tensor edm_sigma_steps(int64_t num_steps, double sigma_min, double sigma_max, double rho) {
  SCORCH_CHECK(num_steps >= 1, "EDM sampler: num_steps=", num_steps, " must be >= 1");
  SCORCH_CHECK(rho > 0 && std::isfinite(rho), "EDM sampler: rho=", rho, " must be > 0");
  SCORCH_CHECK(sigma_min > 0 && sigma_min < sigma_max && std::isfinite(sigma_max),
               "EDM sampler: the noise range sigma_min=", sigma_min, ", sigma_max=", sigma_max,
               " must satisfy 0 < sigma_min < sigma_max < inf");
  auto sigmas = torch::zeros({num_steps + 1}, torch::kDouble);
  auto acc = sigmas.accessor<double, 1>();
  const double hi = std::pow(sigma_max, 1.0 / rho), lo = std::pow(sigma_min, 1.0 / rho);
  for (int64_t i = 0; i < num_steps; ++i) {
    const double frac = num_steps == 1 ? 0.0 : static_cast<double>(i) / (num_steps - 1);
    acc[i] = std::pow(hi + frac * (lo - hi), rho);
  }
  return sigmas;
}

SampleResult edm_sample(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                        const torch::TensorOptions& tensor_options, const EdmOptions& options) {
  return edm_sample_from(sde, score, sample_randn(shape, tensor_options), options);
}

SampleResult edm_sample_from(const Sde& sde, const ScoreFn& score, const torch::Tensor& z,
                             const EdmOptions& o) {
  SCORCH_CHECK(o.eps > 0 && o.eps < sde.T(), "EDM sampler: eps=", o.eps, " must lie in (0, ",
               sde.T(), ")");
  SCORCH_CHECK(o.s_churn >= 0 && o.s_noise >= 0 && o.s_tmin <= o.s_tmax,
               "EDM sampler: churn settings S_churn=", o.s_churn, ", S_noise=", o.s_noise,
               ", S_tmin=", o.s_tmin, ", S_tmax=", o.s_tmax,
               " need S_churn >= 0, S_noise >= 0 and S_tmin <= S_tmax");
  TORCH_CHECK(z.dim() >= 1 && z.size(0) >= 1, "edm_sample_from needs z [B, ...]");
  torch::NoGradGuard no_grad;
  // The SDE's noise range: sigma(0) (sigma_min for VE, 0 otherwise) to sigma(T).
  const double sigma_top = edm_sigma_of_time(sde, sde.T());
  const double sigma_bottom = edm_sigma_of_time(sde, 0.0);
  const double sigma_max = o.sigma_max > 0 ? o.sigma_max : sigma_top;
  const double sigma_min = o.sigma_min > 0 ? o.sigma_min : edm_sigma_of_time(sde, o.eps);
  SCORCH_CHECK(sigma_max <= sigma_top * (1 + 1e-9) && sigma_min >= sigma_bottom * (1 - 1e-9),
               "EDM sampler: the noise range [", sigma_min, ", ", sigma_max,
               "] must lie within the SDE's [sigma(0), sigma(T)] = [", sigma_bottom, ", ",
               sigma_top, "]");
  const auto sigmas = edm_sigma_steps(o.num_steps, sigma_min, sigma_max, o.rho);
  const int64_t n = o.num_steps;
  const auto dtype = z.scalar_type();
  const int64_t batch = z.size(0);

  // dx_hat/dsigma = -sigma m(t) s(m(t) x_hat, t) at t = t(sigma).
  int64_t nfe = 0;
  auto slope = [&](const torch::Tensor& x_hat, double sigma) {
    if (o.denoiser) {
      ++nfe;
      return (x_hat - o.denoiser(x_hat, sigma)) / sigma;
    }
    const double t = std::clamp(edm_time_of_sigma(sde, sigma), 0.0, sde.T());
    const double m = mean_and_std(sde, t).first;
    auto tt = torch::full({batch}, t, z.options());
    ++nfe;
    return score((x_hat * m).to(dtype), tt).to(torch::kDouble) * (-sigma * m);
  };

  const double gamma_max = std::min(o.s_churn / static_cast<double>(n), std::sqrt(2.0) - 1.0);
  auto x = z.to(torch::kDouble) * sigmas[0].item<double>();
  for (int64_t i = 0; i < n; ++i) {
    const double sigma = sigmas[i].item<double>();
    const double sigma_next = sigmas[i + 1].item<double>();
    double sigma_hat = sigma;
    if (gamma_max > 0 && o.s_tmin <= sigma && sigma <= o.s_tmax) {
      sigma_hat = std::min(sigma * (1.0 + gamma_max), std::max(sigma_top, sigma));
      x = x + sample_randn_like(x) * (std::sqrt(sigma_hat * sigma_hat - sigma * sigma) * o.s_noise);
    }
    auto d = slope(x, sigma_hat);
    auto x_next = x + d * (sigma_next - sigma_hat);
    if (sigma_next > 0) {  // Heun correction (2nd order) except on the last step
      auto d_next = slope(x_next, sigma_next);
      x_next = x + (d + d_next) * (0.5 * (sigma_next - sigma_hat));
    }
    x = x_next;
  }
  return {x.to(dtype), nfe};
}

}  // namespace scorch
