// EDM preconditioning, Karras et al. 2022 Table 1 (see precond.h), and its
// conversion to the score of a training SDE (the VP-VE change of variables,
// EDM Sec. 2; sampling/sigma_denoiser.h does the reverse for score models).
#include "nn/precond.h"

#include <cmath>
#include <utility>

namespace scorch {

PrecondCoefficients precond_coefficients(const PrecondOptions& o, const torch::Tensor& sigma) {
  const auto ones = torch::ones_like(sigma);
  switch (o.kind) {
    case Precond::kVP: {
      const auto t =
          (torch::sqrt(o.beta_min * o.beta_min + 2.0 * o.beta_d * torch::log1p(sigma * sigma)) -
           o.beta_min) /
          o.beta_d;
      return {ones, -sigma, torch::rsqrt(sigma * sigma + 1.0), (o.num_labels - 1.0) * t};
    }
    case Precond::kVE:
      return {ones, sigma, ones, torch::log(0.5 * sigma)};
    case Precond::kEDM: {
      const double sd = o.sigma_data;
      const auto s2 = sigma * sigma + sd * sd;
      return {sd * sd / s2, sigma * sd * torch::rsqrt(s2), torch::rsqrt(s2),
              torch::log(sigma) / 4.0};
    }
    case Precond::kNone:
      break;
  }
  TORCH_CHECK(false, "precond_coefficients: model.precond=none has no coefficients");
}

PrecondScoreNetImpl::PrecondScoreNetImpl(PrecondOptions options, std::shared_ptr<const Sde> sde,
                                         ScoreNet inner)
    : PrecondScoreNetImpl(options, std::move(sde), std::move(inner), "net") {}

PrecondScoreNetImpl::PrecondScoreNetImpl(PrecondOptions options, std::shared_ptr<const Sde> sde,
                                         ScoreNet inner, const std::string& inner_name)
    : options_(options), sde_(std::move(sde)), inner_(std::move(inner)) {
  TORCH_CHECK(sde_ && inner_, "PrecondScoreNet: null SDE or network");
  TORCH_CHECK(options_.kind != Precond::kNone, "PrecondScoreNet: model.precond=none");
  register_module(inner_name, inner_);
}

torch::Tensor PrecondScoreNetImpl::denoise(const torch::Tensor& x, const torch::Tensor& sigma_in,
                                           const torch::Tensor& class_labels) {
  TORCH_CHECK(sigma_in.dim() == 1 && sigma_in.size(0) == x.size(0),
              "PrecondScoreNet::denoise: sigma must be [B] for x ", x.sizes());
  const auto sigma = sigma_in.to(x.scalar_type());
  const auto c = precond_coefficients(options_, sigma);
  const auto f = inner_->forward(batch_view(c.c_in, x) * x, c.c_noise, class_labels);
  return batch_view(c.c_skip, x) * x + batch_view(c.c_out, x) * f.to(x.scalar_type());
}

torch::Tensor PrecondScoreNetImpl::forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                                           const torch::Tensor& class_labels) {
  if (sde_->kind() == SdeKind::kVE) {  // time_cond = sigma(t), m = 1
    const auto sigma = time_cond.to(x.scalar_type());
    const auto s2 = batch_view(sigma * sigma, x);
    return (denoise(x, sigma, class_labels) - x) / s2;
  }
  // VP / sub-VP continuous: time_cond = 999 t (score_model.h).
  const auto t = time_cond.to(x.scalar_type()) / 999.0;
  const auto mp = sde_->marginal_prob(torch::ones({x.size(0), 1}, x.options()), t);
  const auto m = mp.mean.squeeze(1);
  const auto sigma = mp.std / m;
  const auto x_hat = x / batch_view(m, x);
  return (x_hat - denoise(x_hat, sigma, class_labels)) / batch_view(sigma, x);
}

std::shared_ptr<PrecondScoreNetImpl> make_precond_score_net(PrecondOptions options,
                                                            std::shared_ptr<const Sde> sde,
                                                            ScoreNet inner) {
  return std::make_shared<PrecondScoreNetImpl>(options, std::move(sde), std::move(inner));
}

}  // namespace scorch
