// The training losses, one small class each (NVlabs/edm loss.py style), written
// as score_sde losses.py defines them (get_sde_loss_fn, get_smld_loss_fn,
// get_ddpm_loss_fn), plus sliced score matching (Song et al. 2019) and explicit
// score matching (Hyvarinen 2005).
//
// Reductions R over the per-sample dims (D = numel of one sample), as score_sde:
//   reduce_mean = true:  R(u) = mean_d u_d
//   reduce_mean = false: R(u) = 0.5 sum_d u_d
#pragma once

#include "core/choices.h"
#include <memory>

#include "losses/loss.h"

namespace scorch {

// R applied per sample: u [B, ...] -> [B].
torch::Tensor reduce_per_sample(const torch::Tensor& u, bool reduce_mean);

struct ContinuousLossOptions {
  bool reduce_mean = true;
  bool likelihood_weighting = false;
  double eps = 1e-5;  // t ~ U(eps, 1)
};

// Continuous denoising score matching (get_sde_loss_fn): t ~ U(eps, 1),
// x_t = mean(x, t) + std(t) z, s = score_fn(net, continuous = true)(x_t, t);
//   l = R((s std + z)^2)               (likelihood_weighting off)
//   l = R((s + z / std)^2) g(t)^2      (on; Song et al. 2021b).
class DsmLoss : public Loss {
 public:
  DsmLoss(std::shared_ptr<const Sde> sde, ContinuousLossOptions options);
  LossOutput operator()(ScoreNetImpl& net, const torch::Tensor& x,
                        const torch::Tensor& class_labels = {},
                        BatchRandom* rng = nullptr) const override;

 private:
  std::shared_ptr<const Sde> sde_;
  ContinuousLossOptions options_;
};

// SMLD / NCSN (get_smld_loss_fn), VE discrete: k ~ U{0..N-1}, sigma = sigmas
// descending [k] (k = 0 is sigma_max), n = sigma z, s = net(x + n, k) (int64 labels),
// l = R((s + n / sigma^2)^2) sigma^2. Reported t = 1 - k / (N - 1), the SDE time
// of level k (score_fn's VE discrete labels are round((1 - t)(N - 1))).
class SmldLoss : public Loss {
 public:
  // sampler: null draws k uniformly; else k ~ p (timestep_sampler.h) and the
  // batch loss is mean(w_k l_k) with w_k = 1 / (N p_k); per_sample stays l_k.
  // The sampler is read, never changed, here (the trainer updates it between steps).
  SmldLoss(std::shared_ptr<const VESde> sde, bool reduce_mean,
           std::shared_ptr<const TimestepSampler> sampler = nullptr);
  LossOutput operator()(ScoreNetImpl& net, const torch::Tensor& x,
                        const torch::Tensor& class_labels = {},
                        BatchRandom* rng = nullptr) const override;

 private:
  std::shared_ptr<const VESde> sde_;
  bool reduce_mean_;
  std::shared_ptr<const TimestepSampler> sampler_;
};

// DDPM noise prediction (get_ddpm_loss_fn), VP discrete: k ~ U{0..N-1},
// x_k = sqrt(abar_k) x + sqrt(1 - abar_k) z, l = R((net(x_k, k) - z)^2) on the raw
// output. Labels are k as a float tensor in x's dtype (score_fn's VP discrete
// labels t (N - 1) are floats too). Reported t = k / (N - 1).
class DdpmLoss : public Loss {
 public:
  // sampler: null draws k uniformly; else k ~ p (timestep_sampler.h) and the
  // batch loss is mean(w_k l_k) with w_k = 1 / (N p_k); per_sample stays l_k.
  // The sampler is read, never changed, here (the trainer updates it between steps).
  DdpmLoss(std::shared_ptr<const VPSde> sde, bool reduce_mean,
           std::shared_ptr<const TimestepSampler> sampler = nullptr);
  LossOutput operator()(ScoreNetImpl& net, const torch::Tensor& x,
                        const torch::Tensor& class_labels = {},
                        BatchRandom* rng = nullptr) const override;

 private:
  std::shared_ptr<const VPSde> sde_;
  bool reduce_mean_;
  std::shared_ptr<const TimestepSampler> sampler_;
};


struct SsmLossOptions : ContinuousLossOptions {
  bool variance_reduced = false;  // ssm_vr: 0.5 ||s||^2 instead of 0.5 (v^T s)^2
  SsmProjection projection = SsmProjection::kRademacher;
  int64_t num_projections = 1;
};

// Sliced score matching (Song, Garg, Shi and Ermon 2019, eq. 8) on the perturbed
// marginal: t ~ U(eps, 1), x_t = mean(x, t) + std(t) z (z only draws the sample),
// s = score_fn(net, continuous = true)(x_t, t), and for projections v (E[v v^T] = I)
//   J = v^T (ds/dx) v + 0.5 (v^T s)^2      (ssm)
//   J = v^T (ds/dx) v + 0.5 ||s||^2         (ssm_vr)
// with v^T (ds/dx) from one vector-Jacobian product (create_graph when grad mode
// is on), averaged over num_projections copies of the batch (one forward pass).
// E[J] = E[tr(ds/dx) + 0.5 ||s||^2], the explicit score-matching objective, which
// equals (1/2) E||s + z/std||^2 - D / (2 std^2) (Hyvarinen 2005; Vincent 2011).
// Weighting: l = lambda(t) c J with lambda = std^2 (g^2 with likelihood_weighting)
// and c = 1 (0.5 sum) or 2/D (mean), so that E[l_ssm] = E[l_dsm] - K with K = D/2
// (sum) or 1 (mean) times lambda/std^2: the same minimiser, weighting and scale as DsmLoss.
class SsmLoss : public Loss {
 public:
  SsmLoss(std::shared_ptr<const Sde> sde, SsmLossOptions options);
  LossOutput operator()(ScoreNetImpl& net, const torch::Tensor& x,
                        const torch::Tensor& class_labels = {},
                        BatchRandom* rng = nullptr) const override;

 private:
  std::shared_ptr<const Sde> sde_;
  SsmLossOptions options_;
};

// Explicit score matching has D backward passes per step; larger data should
// use ssm or dsm.
constexpr int64_t kMaxExplicitScoreMatchingDim = 64;

// Explicit score matching (Hyvarinen 2005, eq. 4) on the perturbed marginal,
// exactly as SsmLoss with the Hutchinson estimate replaced by the exact trace:
// t ~ U(eps, 1), x_t = mean(x, t) + std(t) z (z only draws the sample),
// s = score_fn(net, continuous = true)(x_t, t),
//   J = tr(ds/dx) + 0.5 ||s||^2,
// the trace from D vector-Jacobian products with the unit vectors (create_graph
// when grad mode is on), and SsmLoss's weighting l = lambda(t) c J, so that
// E[l_esm] = E[l_ssm] = E[l_dsm] - K (losses.h, SsmLoss).
// REQUIRES: the network treats the samples of a batch independently (the
// trace of sample b is read from the gradient of sum_b s_b). Throws
// scorch::Error naming training.loss for D = numel of one sample above
// kMaxExplicitScoreMatchingDim.
class EsmLoss : public Loss {
 public:
  EsmLoss(std::shared_ptr<const Sde> sde, ContinuousLossOptions options);
  LossOutput operator()(ScoreNetImpl& net, const torch::Tensor& x,
                        const torch::Tensor& class_labels = {},
                        BatchRandom* rng = nullptr) const override;

 private:
  std::shared_ptr<const Sde> sde_;
  ContinuousLossOptions options_;
};

// EDM's losses (Karras et al. 2022 Table 1; NVlabs/edm loss.py EDMLoss, VPLoss,
// VELoss) on a preconditioned network (nn/precond.h): per sample
//   l = lambda(sigma) sum_d (D(x + sigma z; sigma) - x)_d^2,
// summed over the sample's dimensions as EDM does (training.reduce_mean is not
// used), the batch loss the mean of l. Draws (sigma first, then z, both
// through BatchRandom):
//   edm:    ln sigma = p_mean + p_std u, u ~ N(0, 1); lambda = (sigma^2+sd^2)/(sigma sd)^2;
//           reported t = Phi(u), the CDF of ln sigma;
//   edm_vp: t ~ U(eps_t, 1), sigma = sqrt(exp(beta_d t^2/2 + beta_min t) - 1);
//           lambda = 1/sigma^2; reported t = t;
//   edm_ve: ln sigma ~ U(ln sigma_min, ln sigma_max); lambda = 1/sigma^2; reported
//           t = (ln sigma - ln sigma_min)/(ln sigma_max - ln sigma_min), the CDF of ln sigma.
// All three reported t are in [0, 1] and increase with sigma, like the SDE time.
struct EdmLossOptions {
  LossName kind = LossName::kEdm;  // kEdm, kEdmVp or kEdmVe
  double p_mean = -1.2, p_std = 1.2, sigma_data = 0.5;  // edm
  double beta_min = 0.1, beta_d = 19.9, eps_t = 1e-5;   // edm_vp
  double sigma_min = 0.02, sigma_max = 100.0;           // edm_ve
};

class EdmLoss : public Loss {
 public:
  explicit EdmLoss(EdmLossOptions options);
  // REQUIRES: net is a PrecondScoreNetImpl (model.precond other than none).
  LossOutput operator()(ScoreNetImpl& net, const torch::Tensor& x,
                        const torch::Tensor& class_labels = {},
                        BatchRandom* rng = nullptr) const override;

 private:
  EdmLossOptions options_;
};

// EDM2's loss with the learned uncertainty (Karras et al. 2024 Eq. 21 and
// App. B.2; NVlabs/edm2 training/training_loop.py EDM2Loss) on EDM2's Precond
// (nn/edm2.h, model.name=edm2), whose logvar head gives u(sigma). Draws as
// EdmLoss's edm (sigma first, then z, both through BatchRandom):
//   ln sigma = p_mean + p_std v, v ~ N(0, 1); lambda = (sigma^2 + sd^2) / (sigma sd)^2;
//   (D, u) = net.denoise_with_logvar(y + sigma z, sigma);
//   elementwise (lambda / e^u) (D - y)^2 + u, summed over the sample's N
//   elements as EDM2 sums it (loss.sum() / batch), so per sample
//   l = (lambda / e^u) ||D - y||^2 + N u,   dl/du = N - (lambda / e^u) ||D - y||^2;
// the batch loss the mean of l. Reported t = Phi(v), as edm. For fixed D the
// minimiser is e^u = lambda ||D - y||^2 / N: u learns the log of the weighted
// per-element error at sigma, which normalises every sigma's contribution.
struct Edm2LossOptions {
  double p_mean = -0.4, p_std = 1.0, sigma_data = 0.5;  // EDM2's EDM2Loss defaults
};

class Edm2Loss : public Loss {
 public:
  explicit Edm2Loss(Edm2LossOptions options);
  // REQUIRES: net is an EDM2PrecondImpl (model.name=edm2).
  LossOutput operator()(ScoreNetImpl& net, const torch::Tensor& x,
                        const torch::Tensor& class_labels = {},
                        BatchRandom* rng = nullptr) const override;

 private:
  Edm2LossOptions options_;
};

}  // namespace scorch
