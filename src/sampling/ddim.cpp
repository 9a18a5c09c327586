// DDIM (Song, Meng & Ermon 2021, eq. 12 and 16) on the VP SDE's alpha_bar,
// driven by a score: eps_pred = -sqrt(1 - alpha_bar) s(x, t).
#include "sampling/ddim.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/sample_noise.h"

namespace scorch {

SampleResult ddim_sample(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                         const torch::TensorOptions& tensor_options, const DdimOptions& options) {
  SCORCH_CHECK(sde.kind() == SdeKind::kVP,
               "DDIM sampling needs training.sde=vpsde (it uses the VP alpha_bar); "
               "use the ODE or EDM sampler for vesde and subvpsde");
  torch::NoGradGuard no_grad;
  return ddim_sample_from(sde, score, sde.prior_sampling(shape, tensor_options), options);
}

SampleResult ddim_sample_from(const Sde& sde, const ScoreFn& score, const torch::Tensor& x_T,
                              const DdimOptions& o) {
  SCORCH_CHECK(sde.kind() == SdeKind::kVP,
               "DDIM sampling needs training.sde=vpsde (it uses the VP alpha_bar); "
               "use the ODE or EDM sampler for vesde and subvpsde");
  const auto& vp = static_cast<const VPSde&>(sde);
  SCORCH_CHECK(o.num_steps >= 1, "DDIM: num_steps=", o.num_steps, " must be >= 1");
  SCORCH_CHECK(o.eta >= 0 && std::isfinite(o.eta), "DDIM: eta=", o.eta, " must be >= 0");
  SCORCH_CHECK(o.discrete || (o.eps > 0 && o.eps < sde.T()), "DDIM: eps=", o.eps,
               " must lie in (0, ", sde.T(), ")");
  SCORCH_CHECK(!o.discrete || o.num_steps <= vp.num_scales(), "DDIM: num_steps=", o.num_steps,
               " cannot exceed model.num_scales=", vp.num_scales(), " with discrete alpha_bar");
  TORCH_CHECK(x_T.dim() >= 1 && x_T.size(0) >= 1, "ddim_sample_from needs x_T [B, ...]");
  torch::NoGradGuard no_grad;

  // Times t_i and alpha_bar_i, i < N; alpha_bar_N = 1 (clean data).
  const int64_t n = o.num_steps;
  std::vector<double> times(n), alpha_bar(n + 1, 1.0);
  if (o.discrete) {
    const int64_t levels = vp.num_scales();
    auto table = vp.alphas_cumprod().to(torch::kCPU).contiguous();
    auto tab = table.accessor<double, 1>();
    for (int64_t i = 0; i < n; ++i) {
      const double frac = n == 1 ? 0.0 : static_cast<double>(i) / (n - 1);
      const auto k = static_cast<int64_t>(std::llround((levels - 1) * (1.0 - frac)));
      times[i] = std::min((k + 0.5) / (levels - 1), sde.T());
      alpha_bar[i] = tab[k];
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const double frac = n == 1 ? 0.0 : static_cast<double>(i) / (n - 1);
      times[i] = sde.T() + frac * (o.eps - sde.T());
      auto lmc = vp_log_mean_coeff(torch::full({1}, times[i], torch::kDouble), vp.beta_min(),
                                   vp.beta_max());
      alpha_bar[i] = std::exp(2.0 * lmc.item<double>());
    }
  }

  const auto dtype = x_T.scalar_type();
  auto x = x_T.to(torch::kDouble);
  for (int64_t i = 0; i < n; ++i) {
    const double a = alpha_bar[i], a_prev = alpha_bar[i + 1];
    auto t = torch::full({x.size(0)}, times[i], x_T.options());
    auto eps_pred = score(x.to(dtype), t).to(torch::kDouble) * -std::sqrt(1.0 - a);
    auto x0_pred = (x - eps_pred * std::sqrt(1.0 - a)) / std::sqrt(a);
    const double sigma =
        o.eta * std::sqrt((1.0 - a_prev) / (1.0 - a)) * std::sqrt(1.0 - a / a_prev);
    const double dir_var = 1.0 - a_prev - sigma * sigma;
    SCORCH_CHECK(dir_var > -1e-12, "DDIM: eta=", o.eta,
                 " is too large: sigma^2 exceeds 1 - alpha_bar_prev at step ", i,
                 " (eta <= 1 is always valid)");
    x = x0_pred * std::sqrt(a_prev) + eps_pred * std::sqrt(std::max(dir_var, 0.0));
    if (sigma > 0) x = x + sample_randn_like(x) * sigma;
  }
  return {x.to(dtype), n};
}

}  // namespace scorch
