// Explicit score matching (Hyvarinen 2005, eq. 4: E[tr(ds/dx) + 0.5 ||s||^2])
// with the exact Jacobian trace, on the SDE's perturbed marginals with the
// weighting of SsmLoss (see losses.h for the scale and its relation to DSM).
#include <utility>

#include "core/error.h"
#include "losses/losses.h"
#include "nn/score_model.h"

namespace scorch {

EsmLoss::EsmLoss(std::shared_ptr<const Sde> sde, ContinuousLossOptions options)
    : sde_(std::move(sde)), options_(options) {
  TORCH_CHECK(sde_, "EsmLoss: null SDE");
  TORCH_CHECK(options_.eps > 0.0 && options_.eps < 1.0, "EsmLoss: eps must be in (0, 1)");
}

LossOutput EsmLoss::operator()(ScoreNetImpl& net, const torch::Tensor& x,
                               const torch::Tensor& class_labels, BatchRandom* rng) const {
  BatchRandom default_rng;
  BatchRandom& random = rng ? *rng : default_rng;
  const int64_t batch = x.size(0);
  const int64_t dim = x[0].numel();
  SCORCH_CHECK(dim <= kMaxExplicitScoreMatchingDim, "training.loss=esm takes one backward pass ",
               "per data dimension and allows at most ", kMaxExplicitScoreMatchingDim,
               " dimensions; these data have ", dim, ". Use training.loss=ssm or dsm");
  const auto t = random.uniform({batch}, x.options()) * (sde_->T() - options_.eps) + options_.eps;
  const auto mp = sde_->marginal_prob(x, t);
  const auto perturbed =
      (mp.mean + batch_view(mp.std, x) * random.normal(x.sizes(), x.options())).detach();

  // The Jacobian term needs a graph even when the caller evaluates without grad;
  // create_graph follows the caller's grad mode, so an eval loss stays detached.
  const bool keep_graph = torch::GradMode::is_enabled();
  torch::AutoGradMode enable_grad(true);
  const auto x_in = perturbed.clone().requires_grad_(true);
  const auto score = score_fn(net, *sde_, /*continuous=*/true, x_in, t, class_labels);
  const auto score_flat = score.reshape({batch, dim});
  // tr(ds/dx) = sum_d d s_d / d x_d: the d-th unit vector's vector-Jacobian
  // product (all samples at once) gives row d of ds/dx per sample.
  auto trace = torch::zeros({batch}, score.options());
  for (int64_t d = 0; d < dim; ++d) {
    auto unit = torch::zeros_like(score_flat);
    unit.select(1, d).fill_(1.0);
    const auto row = torch::autograd::grad({score_flat}, {x_in}, {unit}, /*retain_graph=*/true,
                                           /*create_graph=*/keep_graph)[0];
    trace = trace + row.reshape({batch, dim}).select(1, d);
  }
  const auto objective = trace + 0.5 * score_flat.pow(2).sum(1);  // [B]

  // lambda(t) c: std^2 (or g^2) times 1 for the 0.5-sum reduction, 2/D for the mean.
  auto weight = options_.likelihood_weighting ? sde_->sde(torch::zeros_like(x), t).diffusion.pow(2)
                                              : mp.std.pow(2);
  if (options_.reduce_mean) weight = weight * (2.0 / static_cast<double>(dim));
  auto losses = objective * weight;
  if (!keep_graph) losses = losses.detach();
  return {losses.mean(), losses.detach(), t.detach(), {}};
}

}  // namespace scorch
