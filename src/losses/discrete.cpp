// The discrete-level losses of score_sde losses.py: SMLD / NCSN (Song and Ermon
// 2019, eq. 5, sigma^2-weighted) for VE and DDPM noise prediction (Ho et al.
// 2020, eq. 14, L_simple) for VP.
#include <utility>

#include "core/device_cache.h"
#include "losses/losses.h"

namespace scorch {

namespace {

// Levels k ~ U{0..N-1} (no sampler; weights undefined) or k ~ p with weights 1 / (N p_k).
std::pair<torch::Tensor, torch::Tensor> draw_levels(const TimestepSampler* sampler,
                                                    BatchRandom& random, int64_t n, int64_t batch,
                                                    const torch::TensorOptions& options) {
  if (!sampler) return {random.randint(n, {batch}, options.dtype(torch::kLong)), {}};
  return sampler->sample(random, batch, options);
}

torch::Tensor weighted_mean(const torch::Tensor& losses, const torch::Tensor& weights) {
  return weights.defined() ? (losses * weights.to(losses.scalar_type())).mean() : losses.mean();
}

}  // namespace

SmldLoss::SmldLoss(std::shared_ptr<const VESde> sde, bool reduce_mean,
                   std::shared_ptr<const TimestepSampler> sampler)
    : sde_(std::move(sde)), reduce_mean_(reduce_mean), sampler_(std::move(sampler)) {
  TORCH_CHECK(!sampler_ || sampler_->num_levels() == sde_->num_scales(),
              "SmldLoss: the timestep sampler's level count differs from the SDE's");
  TORCH_CHECK(sde_, "SmldLoss: null SDE");
}

LossOutput SmldLoss::operator()(ScoreNetImpl& net, const torch::Tensor& x,
                                const torch::Tensor& class_labels, BatchRandom* rng) const {
  BatchRandom default_rng;
  BatchRandom& random = rng ? *rng : default_rng;
  const int64_t batch = x.size(0);
  const int64_t n = sde_->num_scales();
  const auto [labels, weights] = draw_levels(sampler_.get(), random, n, batch, x.options());
  // smld_sigma_array = flip(discrete_sigmas): level k has sigma_{N-1-k}. The
  // float64 table is copied to x's device once (on_device), not every step.
  const auto sigmas = on_device(sde_->discrete_sigmas(), x.device())
                          .index_select(0, (n - 1) - labels)
                          .to(x.scalar_type());
  const auto sigma = batch_view(sigmas, x);
  const auto noise = random.normal(x.sizes(), x.options()) * sigma;
  const auto score = net.forward(x + noise, labels, class_labels);
  const auto target = -noise / (sigma * sigma);
  const auto losses = reduce_per_sample((score - target).pow(2), reduce_mean_) * sigmas * sigmas;
  const auto t = 1.0 - labels.to(x.scalar_type()) / static_cast<double>(n - 1);
  return {weighted_mean(losses, weights), losses.detach(), t, labels};
}

DdpmLoss::DdpmLoss(std::shared_ptr<const VPSde> sde, bool reduce_mean,
                   std::shared_ptr<const TimestepSampler> sampler)
    : sde_(std::move(sde)), reduce_mean_(reduce_mean), sampler_(std::move(sampler)) {
  TORCH_CHECK(!sampler_ || sampler_->num_levels() == sde_->num_scales(),
              "DdpmLoss: the timestep sampler's level count differs from the SDE's");
  TORCH_CHECK(sde_, "DdpmLoss: null SDE");
}

LossOutput DdpmLoss::operator()(ScoreNetImpl& net, const torch::Tensor& x,
                                const torch::Tensor& class_labels, BatchRandom* rng) const {
  BatchRandom default_rng;
  BatchRandom& random = rng ? *rng : default_rng;
  const int64_t batch = x.size(0);
  const int64_t n = sde_->num_scales();
  const auto [labels, weights] = draw_levels(sampler_.get(), random, n, batch, x.options());
  const auto abar = on_device(sde_->alphas_cumprod(), x.device()).index_select(0, labels);
  const auto sqrt_abar = batch_view(torch::sqrt(abar).to(x.scalar_type()), x);
  const auto sqrt_1m_abar = batch_view(torch::sqrt(1.0 - abar).to(x.scalar_type()), x);
  const auto noise = random.normal(x.sizes(), x.options());
  const auto perturbed = sqrt_abar * x + sqrt_1m_abar * noise;
  const auto level = labels.to(x.scalar_type());
  const auto out = net.forward(perturbed, level, class_labels);
  const auto losses = reduce_per_sample((out - noise).pow(2), reduce_mean_);
  return {weighted_mean(losses, weights), losses.detach(), level / static_cast<double>(n - 1),
          labels};
}

}  // namespace scorch
