// EDM's training losses (Karras et al. 2022 Table 1 and eq. 2; NVlabs/edm
// training/loss.py): lambda(sigma) ||D(y + n; sigma) - y||^2 on the denoiser of
// a preconditioned network (nn/precond.h), and EDM2's with the learned
// uncertainty (NVlabs/edm2 training/training_loop.py EDM2Loss) on EDM2's
// Precond (nn/edm2.h). See losses.h for the draws.
#include <cmath>
#include <utility>

#include "losses/losses.h"
#include "nn/edm2.h"
#include "nn/precond.h"

namespace scorch {

EdmLoss::EdmLoss(EdmLossOptions options) : options_(options) {
  TORCH_CHECK(options_.kind == LossName::kEdm || options_.kind == LossName::kEdmVp ||
                  options_.kind == LossName::kEdmVe,
              "EdmLoss: kind must be edm, edm_vp or edm_ve");
  TORCH_CHECK(options_.p_std > 0 && options_.sigma_data > 0, "EdmLoss: p_std, sigma_data > 0");
  TORCH_CHECK(options_.eps_t > 0 && options_.eps_t < 1, "EdmLoss: eps_t must be in (0, 1)");
  TORCH_CHECK(options_.sigma_min > 0 && options_.sigma_min < options_.sigma_max,
              "EdmLoss: 0 < sigma_min < sigma_max");
}

LossOutput EdmLoss::operator()(ScoreNetImpl& net, const torch::Tensor& x,
                               const torch::Tensor& class_labels, BatchRandom* rng) const {
  auto* precond = dynamic_cast<PrecondScoreNetImpl*>(&net);
  TORCH_CHECK(precond, "EdmLoss: training.loss=", options_.kind,
              " needs a preconditioned network (model.precond)");
  BatchRandom default_rng;
  BatchRandom& random = rng ? *rng : default_rng;
  const int64_t batch = x.size(0);
  const auto& o = options_;
  torch::Tensor sigma, weight, t;
  switch (o.kind) {
    case LossName::kEdm: {
      const auto u = random.normal({batch}, x.options());
      sigma = torch::exp(u * o.p_std + o.p_mean);
      const double sd2 = o.sigma_data * o.sigma_data;
      weight = (sigma * sigma + sd2) / (sigma * sigma * sd2);
      t = 0.5 * (1.0 + torch::erf(u / std::sqrt(2.0)));
      break;
    }
    case LossName::kEdmVp: {
      t = 1.0 + random.uniform({batch}, x.options()) * (o.eps_t - 1.0);
      sigma = torch::sqrt(torch::expm1(0.5 * o.beta_d * t * t + o.beta_min * t));
      weight = 1.0 / (sigma * sigma);
      break;
    }
    default: {  // kEdmVe
      t = random.uniform({batch}, x.options());
      sigma = o.sigma_min * torch::pow(o.sigma_max / o.sigma_min, t);
      weight = 1.0 / (sigma * sigma);
      break;
    }
  }
  const auto n = random.normal(x.sizes(), x.options()) * batch_view(sigma, x);
  const auto d = precond->denoise(x + n, sigma, class_labels);
  const auto losses = weight * (d - x).pow(2).flatten(1).sum(1);
  return {losses.mean(), losses.detach(), t.detach(), {}};
}

Edm2Loss::Edm2Loss(Edm2LossOptions options) : options_(options) {
  TORCH_CHECK(options_.p_std > 0 && options_.sigma_data > 0, "Edm2Loss: p_std, sigma_data > 0");
}

LossOutput Edm2Loss::operator()(ScoreNetImpl& net, const torch::Tensor& x,
                                const torch::Tensor& class_labels, BatchRandom* rng) const {
  auto* edm2 = dynamic_cast<EDM2PrecondImpl*>(&net);
  TORCH_CHECK(edm2, "Edm2Loss: training.loss=edm2 needs EDM2's network (model.name=edm2)");
  BatchRandom default_rng;
  BatchRandom& random = rng ? *rng : default_rng;
  const int64_t batch = x.size(0);
  const auto& o = options_;
  const auto v = random.normal({batch}, x.options());
  const auto sigma = torch::exp(v * o.p_std + o.p_mean);
  const double sd2 = o.sigma_data * o.sigma_data;
  const auto weight = (sigma * sigma + sd2) / (sigma * sigma * sd2);
  const auto t = 0.5 * (1.0 + torch::erf(v / std::sqrt(2.0)));
  const auto n = random.normal(x.sizes(), x.options()) * batch_view(sigma, x);
  const auto out = edm2->denoise_with_logvar(x + n, sigma, class_labels);
  // Per sample, the elementwise (w / e^u) (D - y)^2 + u summed: u is one
  // value per sample, so its N copies sum to N u.
  const auto logvar = out.logvar.to(out.denoised.scalar_type());
  const auto error = (out.denoised - x).pow(2).flatten(1).sum(1);
  const double elements = static_cast<double>(x[0].numel());
  const auto losses = weight.to(error.scalar_type()) * torch::exp(-logvar) * error +
                      logvar * elements;
  return {losses.mean(), losses.detach(), t.detach(), {}};
}

}  // namespace scorch
