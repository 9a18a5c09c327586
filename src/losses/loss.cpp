// The loss factory (score_sde losses.py get_step_fn's choice of loss, extended
// with sliced and explicit score matching), the shared reduction R, and
// per-quartile stats.
#include "losses/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/config.h"
#include "core/error.h"
#include "losses/losses.h"

namespace scorch {

torch::Tensor reduce_per_sample(const torch::Tensor& u, bool reduce_mean) {
  const auto flat = u.flatten(1);
  return reduce_mean ? flat.mean(1) : 0.5 * flat.sum(1);
}

std::unique_ptr<Loss> make_loss(const Config& config, std::shared_ptr<const Sde> sde,
                                std::shared_ptr<const TimestepSampler> sampler) {
  TORCH_CHECK(sde, "make_loss: null SDE");
  const auto& tr = config.training;  // validated: the loss fits the SDE and time
  ContinuousLossOptions continuous_options;
  continuous_options.reduce_mean = tr.reduce_mean;
  continuous_options.likelihood_weighting = tr.likelihood_weighting;
  continuous_options.eps = tr.eps;
  const LossName name = resolved_loss(config);
  switch (name) {
    case LossName::kDsm:
      return std::make_unique<DsmLoss>(sde, continuous_options);
    case LossName::kEsm:
      return std::make_unique<EsmLoss>(sde, continuous_options);
    case LossName::kSsm:
    case LossName::kSsmVr: {
      SsmLossOptions options;
      static_cast<ContinuousLossOptions&>(options) = continuous_options;
      options.variance_reduced = name == LossName::kSsmVr;
      options.projection = tr.ssm_projection;
      options.num_projections = tr.ssm_num_projections;
      return std::make_unique<SsmLoss>(sde, options);
    }
    case LossName::kSmld: {
      auto ve = std::dynamic_pointer_cast<const VESde>(sde);
      TORCH_CHECK(ve, "make_loss: training.loss=smld with a ", sde->kind(), " SDE");
      return std::make_unique<SmldLoss>(ve, tr.reduce_mean, std::move(sampler));
    }
    case LossName::kDdpm: {
      auto vp = std::dynamic_pointer_cast<const VPSde>(sde);
      TORCH_CHECK(vp, "make_loss: training.loss=ddpm with a ", sde->kind(), " SDE");
      return std::make_unique<DdpmLoss>(vp, tr.reduce_mean, std::move(sampler));
    }
    case LossName::kEdm:
    case LossName::kEdmVp:
    case LossName::kEdmVe: {
      EdmLossOptions options;
      options.kind = name;
      options.p_mean = tr.p_mean;
      options.p_std = tr.p_std;
      options.sigma_data = config.model.sigma_data;
      options.beta_min = config.model.beta_min;
      options.beta_d = config.model.beta_max - config.model.beta_min;
      options.eps_t = tr.eps;
      options.sigma_min = config.model.sigma_min;
      options.sigma_max = config.model.sigma_max;
      return std::make_unique<EdmLoss>(options);
    }
    case LossName::kEdm2: {
      Edm2LossOptions options;
      options.p_mean = tr.p_mean;
      options.p_std = tr.p_std;
      options.sigma_data = config.model.sigma_data;
      return std::make_unique<Edm2Loss>(options);
    }
    case LossName::kAuto:
      break;
  }
  TORCH_CHECK(false, "make_loss: unresolved training.loss");
}

void QuartileStats::add(const LossOutput& out) {
  add(out.t.detach().to(torch::kCPU, torch::kFloat64), out.per_sample.detach().to(torch::kCPU, torch::kFloat64));
}

void QuartileStats::add(const torch::Tensor& t_in, const torch::Tensor& per_sample) {
  const auto t = t_in.to(torch::kCPU, torch::kFloat64).contiguous();
  const auto l = per_sample.to(torch::kCPU, torch::kFloat64).contiguous();
  TORCH_CHECK(t.numel() == l.numel(), "QuartileStats: t and per_sample sizes differ");
  const double* tp = t.data_ptr<double>();
  const double* lp = l.data_ptr<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int q = std::clamp(static_cast<int>(std::floor(tp[i] * 4.0)), 0, 3);
    sum[q] += lp[i];
    count[q] += 1;
  }
}

double QuartileStats::mean(int q) const {
  TORCH_CHECK(q >= 0 && q < 4, "QuartileStats::mean: quartile ", q, " out of range");
  if (count[q] == 0) return std::numeric_limits<double>::quiet_NaN();
  return sum[q] / static_cast<double>(count[q]);
}

void QuartileStats::merge(const QuartileStats& other) {
  for (int q = 0; q < 4; ++q) {
    sum[q] += other.sum[q];
    count[q] += other.count[q];
  }
}

}  // namespace scorch
