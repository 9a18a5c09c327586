// Sliced score matching (Song, Garg, Shi and Ermon 2019, eq. 8 and the
// variance-reduced form, eq. 9) applied to the SDE's perturbed marginals with
// DSM's weighting convention (see losses.h for the derivation of the scale).
#include <utility>

#include "losses/losses.h"
#include "nn/score_model.h"

namespace scorch {

SsmLoss::SsmLoss(std::shared_ptr<const Sde> sde, SsmLossOptions options)
    : sde_(std::move(sde)), options_(options) {
  TORCH_CHECK(sde_, "SsmLoss: null SDE");
  TORCH_CHECK(options_.eps > 0.0 && options_.eps < 1.0, "SsmLoss: eps must be in (0, 1)");
  TORCH_CHECK(options_.num_projections >= 1, "SsmLoss: num_projections must be >= 1");
}

LossOutput SsmLoss::operator()(ScoreNetImpl& net, const torch::Tensor& x,
                               const torch::Tensor& class_labels, BatchRandom* rng) const {
  BatchRandom default_rng;
  BatchRandom& random = rng ? *rng : default_rng;
  const int64_t batch = x.size(0);
  const int64_t copies = options_.num_projections;
  const double dim = static_cast<double>(x[0].numel());
  const auto t = random.uniform({batch}, x.options()) * (sde_->T() - options_.eps) + options_.eps;
  const auto mp = sde_->marginal_prob(x, t);
  const auto perturbed = (mp.mean + batch_view(mp.std, x) * random.normal(x.sizes(), x.options())).detach();

  // One forward pass over `copies` replicas of the batch, one projection each
  // (as Song et al.'s reference implementation duplicates the samples).
  auto repeat = [copies](const torch::Tensor& v) {
    std::vector<int64_t> reps(static_cast<size_t>(v.dim()), 1);
    reps[0] = copies;
    return copies == 1 ? v : v.repeat(reps);
  };
  const auto t_rep = repeat(t);
  const auto labels_rep = class_labels.defined() ? repeat(class_labels) : class_labels;

  // The Jacobian term needs a graph even when the caller evaluates without grad;
  // create_graph follows the caller's grad mode, so an eval loss stays detached.
  const bool keep_graph = torch::GradMode::is_enabled();
  torch::AutoGradMode enable_grad(true);
  const auto x_rep = repeat(perturbed).requires_grad_(true);
  const auto score = score_fn(net, *sde_, /*continuous=*/true, x_rep, t_rep, labels_rep);
  // Projections drawn per sample ([B, copies, ...], so a sample's projections
  // do not depend on its share of the batch), laid out as x_rep's rows.
  std::vector<int64_t> per_sample = x.sizes().vec();
  per_sample.insert(per_sample.begin() + 1, copies);
  const auto drawn = options_.projection == SsmProjection::kRademacher
                         ? random.randint(2, per_sample, x.options()) * 2.0 - 1.0
                         : random.normal(per_sample, x.options());
  const auto v = drawn.transpose(0, 1).reshape(x_rep.sizes());
  // v^T (ds/dx) = d(v . s)/dx, one vector-Jacobian product.
  const auto vjp = torch::autograd::grad({score}, {x_rep}, {v}, /*retain_graph=*/keep_graph,
                                         /*create_graph=*/keep_graph)[0];
  const auto jacobian_term = (vjp * v).flatten(1).sum(1);
  const auto norm_term = options_.variance_reduced ? 0.5 * score.flatten(1).pow(2).sum(1)
                                                   : 0.5 * (v * score).flatten(1).sum(1).pow(2);
  const auto objective = (jacobian_term + norm_term).view({copies, batch}).mean(0);  // [B]

  // lambda(t) c: std^2 (or g^2) times 1 for the 0.5-sum reduction, 2/D for the mean.
  auto weight = options_.likelihood_weighting ? sde_->sde(torch::zeros_like(x), t).diffusion.pow(2)
                                              : mp.std.pow(2);
  if (options_.reduce_mean) weight = weight * (2.0 / dim);
  auto losses = objective * weight;
  if (!keep_graph) losses = losses.detach();
  return {losses.mean(), losses.detach(), t.detach(), {}};
}

}  // namespace scorch
