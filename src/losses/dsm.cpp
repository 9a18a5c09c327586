// Continuous denoising score matching (Vincent 2011; Song et al. 2021, eq. 7),
// score_sde losses.py get_sde_loss_fn, with optional likelihood weighting
// lambda(t) = g(t)^2 (Song, Durkan, Murray and Ermon 2021).
#include <utility>

#include "losses/losses.h"
#include "nn/score_model.h"

namespace scorch {

DsmLoss::DsmLoss(std::shared_ptr<const Sde> sde, ContinuousLossOptions options)
    : sde_(std::move(sde)), options_(options) {
  TORCH_CHECK(sde_, "DsmLoss: null SDE");
  TORCH_CHECK(options_.eps > 0.0 && options_.eps < 1.0, "DsmLoss: eps must be in (0, 1)");
}

LossOutput DsmLoss::operator()(ScoreNetImpl& net, const torch::Tensor& x,
                               const torch::Tensor& class_labels, BatchRandom* rng) const {
  BatchRandom default_rng;
  BatchRandom& random = rng ? *rng : default_rng;
  const int64_t batch = x.size(0);
  const auto t = random.uniform({batch}, x.options()) * (sde_->T() - options_.eps) + options_.eps;
  const auto z = random.normal(x.sizes(), x.options());
  const auto mp = sde_->marginal_prob(x, t);
  const auto std = batch_view(mp.std, x);
  const auto perturbed = mp.mean + std * z;
  const auto score = score_fn(net, *sde_, /*continuous=*/true, perturbed, t, class_labels);

  torch::Tensor losses;
  if (!options_.likelihood_weighting) {
    losses = reduce_per_sample((score * std + z).pow(2), options_.reduce_mean);
  } else {
    const auto g = sde_->sde(torch::zeros_like(x), t).diffusion;
    losses = reduce_per_sample((score + z / std).pow(2), options_.reduce_mean) * g * g;
  }
  return {losses.mean(), losses.detach(), t.detach(), {}};
}

}  // namespace scorch
