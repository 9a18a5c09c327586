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
  const auto& tr = config.training;
  std::string name = tr.loss;
  if (name == "auto") {
    if (tr.continuous) {
      name = "dsm";
    } else if (sde->kind() == SdeKind::kVE) {
      name = "smld";
    } else if (sde->kind() == SdeKind::kVP) {
      name = "ddpm";
    } else {
      fail("training.continuous: false has no discrete loss for training.sde=" + tr.sde +
           " (score_sde supports discrete training for vesde and vpsde only); set "
           "training.continuous=true");
    }
  }

  SCORCH_CHECK(!sampler || name == "smld" || name == "ddpm", "training.timestep_sampler=",
               tr.timestep_sampler, " draws discrete levels and applies to training.loss=smld "
               "or ddpm (training.continuous=false), not training.loss=", name,
               "; set training.timestep_sampler=uniform");

  ContinuousLossOptions continuous_options;
  continuous_options.reduce_mean = tr.reduce_mean;
  continuous_options.likelihood_weighting = tr.likelihood_weighting;
  continuous_options.eps = tr.eps;
  const bool is_continuous_loss =
      name == "dsm" || name == "ssm" || name == "ssm_vr" || name == "esm";
  if (is_continuous_loss) {
    SCORCH_CHECK(tr.continuous, "training.loss=", name,
                 " trains a continuous-time model and needs training.continuous=true");
    SCORCH_CHECK(tr.eps > 0.0 && tr.eps < 1.0, "training.eps: ", tr.eps,
                 " must be in (0, 1) (t ~ U(eps, 1))");
  }
  if (name == "dsm") return std::make_unique<DsmLoss>(sde, continuous_options);
  if (name == "esm") return std::make_unique<EsmLoss>(sde, continuous_options);
  if (name == "ssm" || name == "ssm_vr") {
    SsmLossOptions options;
    static_cast<ContinuousLossOptions&>(options) = continuous_options;
    options.variance_reduced = name == "ssm_vr";
    if (tr.ssm_projection == "rademacher") {
      options.projection = SsmProjection::kRademacher;
    } else if (tr.ssm_projection == "gaussian") {
      options.projection = SsmProjection::kGaussian;
    } else {
      fail("training.ssm_projection: unknown projection '" + tr.ssm_projection +
           "'; expected rademacher or gaussian");
    }
    SCORCH_CHECK(tr.ssm_num_projections >= 1,
                 "training.ssm_num_projections: ", tr.ssm_num_projections, " must be at least 1");
    options.num_projections = tr.ssm_num_projections;
    return std::make_unique<SsmLoss>(sde, options);
  }
  if (name == "smld") {
    auto ve = std::dynamic_pointer_cast<const VESde>(sde);
    SCORCH_CHECK(ve, "training.loss=smld needs training.sde=vesde, got ", tr.sde);
    SCORCH_CHECK(!tr.continuous,
                 "training.loss=smld trains a discrete model and needs "
                 "training.continuous=false");
    return std::make_unique<SmldLoss>(ve, tr.reduce_mean, std::move(sampler));
  }
  if (name == "ddpm") {
    auto vp = std::dynamic_pointer_cast<const VPSde>(sde);
    SCORCH_CHECK(vp, "training.loss=ddpm needs training.sde=vpsde, got ", tr.sde);
    SCORCH_CHECK(!tr.continuous,
                 "training.loss=ddpm trains a discrete model and needs "
                 "training.continuous=false");
    return std::make_unique<DdpmLoss>(vp, tr.reduce_mean, std::move(sampler));
  }
  fail("training.loss: unknown loss '" + tr.loss +
       "'; expected one of auto, dsm, smld, ddpm, ssm, ssm_vr");
}

void QuartileStats::add(const LossOutput& out) {
  const auto t = out.t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const auto l = out.per_sample.detach().to(torch::kCPU, torch::kFloat64).contiguous();
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
