// The training-loss interface the trainer uses, its factory from the config, and
// per-quartile loss statistics for logging. The losses themselves (score_sde
// losses.py and Song et al. 2019 sliced score matching) are in losses.h.
//
//   auto loss_fn = make_loss(config, sde);
//   LossOutput out = (*loss_fn)(*net, x, labels);
//   out.loss.backward();
//   quartiles.add(out);
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "core/batch_random.h"
#include "losses/timestep_sampler.h"
#include "nn/score_net.h"
#include "sde/sde.h"

namespace scorch {

struct Config;

struct LossOutput {
  torch::Tensor loss;        // scalar, batch mean, differentiable
  torch::Tensor per_sample;  // [B], detached
  torch::Tensor t;           // [B] in [0,1]: the time, or level/(N-1) for discrete losses, detached
  torch::Tensor level;       // [B] int64: the discrete level k (smld, ddpm); undefined otherwise
};

// A loss is stateless apart from its options: operator() may be called from
// several threads on different networks. Random draws (times, noise,
// projections) come from `rng` when given (the trainer's share of a global
// batch, see core/batch_random.h), else from LibTorch's default generator on
// x's device.
class Loss {
 public:
  virtual ~Loss() = default;
  // x: clean batch [B, ...] (already scaled); class_labels: [B] int64 or undefined.
  virtual LossOutput operator()(ScoreNetImpl& net, const torch::Tensor& x,
                                const torch::Tensor& class_labels = {},
                                BatchRandom* rng = nullptr) const = 0;
};

// training.loss: auto => dsm if training.continuous, smld for VE discrete, ddpm
// for VP discrete (sub-VP has no discrete loss, as in score_sde); or dsm, smld,
// ddpm, ssm, ssm_vr, esm, or EDM's edm, edm_vp, edm_ve (losses.h EdmLoss; they need
// a model.precond network), or EDM2's edm2 (losses.h Edm2Loss; model.name=edm2)
// explicitly. Uses training.reduce_mean, likelihood_weighting,
// eps, ssm_projection, ssm_num_projections, p_mean, p_std. Throws scorch::Error naming the key
// for a combination that cannot work (e.g. smld on a VP SDE).
// A `sampler` (make_timestep_sampler) draws smld/ddpm levels by importance;
// any other loss with one throws scorch::Error naming training.timestep_sampler.
std::unique_ptr<Loss> make_loss(const Config& config, std::shared_ptr<const Sde> sde,
                                std::shared_ptr<const TimestepSampler> sampler = nullptr);

// Loss by quartile of t, for logging: sums and counts so they accumulate exactly
// across steps and ranks.
// Quartile q holds t in [q/4, (q+1)/4), with t = 1 in quartile 3.
struct QuartileStats {
  double sum[4] = {0, 0, 0, 0};
  int64_t count[4] = {0, 0, 0, 0};
  void add(const LossOutput&);
  // The same from t [B] and per-sample losses [B] (any device and dtype).
  void add(const torch::Tensor& t, const torch::Tensor& per_sample);
  double mean(int q) const;                // sum / count; NaN when the quartile is empty
  void merge(const QuartileStats& other);  // adds another's sums and counts
};

}  // namespace scorch
