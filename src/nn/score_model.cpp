// Network output -> score conversion of score_sde models/utils.py get_score_fn
// (see score_model.h for the table of conventions).
#include "core/device_cache.h"
#include "nn/score_model.h"

#include <utility>

namespace scorch {

namespace {
bool uses_continuous_labels(const Sde& sde, bool continuous) {
  // score_sde: `if continuous or isinstance(sde, subVPSDE)`.
  return continuous || sde.kind() == SdeKind::kSubVP;
}
}  // namespace

torch::Tensor score_time_cond(const Sde& sde, bool continuous, const torch::Tensor& t) {
  const double n_minus_1 = static_cast<double>(sde.num_scales() - 1);
  switch (sde.kind()) {
    case SdeKind::kVP:
    case SdeKind::kSubVP:
      // Continuous models assume a largest time embedding of 999.
      if (uses_continuous_labels(sde, continuous)) return t * 999.0;
      return t * n_minus_1;
    case SdeKind::kVE:
      if (continuous) return static_cast<const VESde&>(sde).sigma(t);
      // labels = T - t; labels *= N - 1; round (half to even) -> long. 0 is sigma_max.
      return torch::round((sde.T() - t) * n_minus_1).to(torch::kLong);
  }
  TORCH_CHECK(false, "score_time_cond: unknown SDE kind");
}

torch::Tensor score_output_std(const Sde& sde, bool continuous, const torch::Tensor& t,
                               torch::ScalarType dtype) {
  TORCH_CHECK(sde.kind() != SdeKind::kVE, "score_output_std: VE scores are the raw output");
  if (uses_continuous_labels(sde, continuous)) {
    // std of the marginal: marginal_prob(zeros_like(x), t)[1].
    return sde.marginal_prob(torch::zeros({t.size(0), 1}, t.options().dtype(dtype)), t).std;
  }
  const auto& vp = static_cast<const VPSde&>(sde);
  const auto level = score_time_cond(sde, continuous, t).to(torch::kLong);
  const auto table = torch::sqrt(1.0 - on_device(vp.alphas_cumprod(), t.device()));
  return table.index_select(0, level.clamp(0, sde.num_scales() - 1)).to(dtype);
}

torch::Tensor score_fn(ScoreNetImpl& net, const Sde& sde, bool continuous, const torch::Tensor& x,
                       const torch::Tensor& t, const torch::Tensor& class_labels) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == x.size(0), "score_fn: t must be [B] for x ", x.sizes(),
              ", got ", t.sizes());
  const auto out = net.forward(x, score_time_cond(sde, continuous, t), class_labels);
  if (sde.kind() == SdeKind::kVE) return out;
  const auto std = score_output_std(sde, continuous, t, x.scalar_type());
  return -out / batch_view(std, out);
}

ScoreFn make_score_fn(ScoreNet net, std::shared_ptr<const Sde> sde, bool continuous,
                      torch::Tensor class_labels) {
  TORCH_CHECK(net && sde, "make_score_fn: null network or SDE");
  return [net = std::move(net), sde = std::move(sde), continuous, labels = std::move(class_labels)](
             const torch::Tensor& x, const torch::Tensor& t) {
    return score_fn(*net, *sde, continuous, x, t, labels);
  };
}

}  // namespace scorch
