// Every sampler at its default settings, driven by an exact (analytic) score
// of a 2-D Gaussian mixture, against exact samples of that mixture: the mean
// and covariance within a stated tolerance, and the MMD at the noise floor,
// i.e. within the spread of MMD between independent exact draws.
#include <gtest/gtest.h>

#include "core/config.h"
#include "eval/sample_distance.h"
#include "nn/analytic.h"
#include "nn/score_model.h"
#include "sampling/sampler.h"

namespace scorch {
namespace {

struct Case {
  const char* name;
  const char* sde;
  const char* method;
  const char* predictor;
  const char* corrector;
};

class SamplerMmd : public ::testing::TestWithParam<Case> {};

TEST_P(SamplerMmd, DefaultSettingsReachTheNoiseFloor) {
  const auto& p = GetParam();
  Config c;  // defaults: num_steps 0 -> each method's default
  c.model.name = ModelName::kAnalytic;
  c.model.analytic_means = {-1.5, 0.0, 1.5, 0.5};
  c.model.analytic_weights = {0.4, 0.6};
  c.model.analytic_std = 0.5;
  c.training.sde = parse_choice<SdeKind>(p.sde, "training.sde");
  // VE: sigma_max well above the data scale, so the prior N(0, sigma_max^2 I)
  // matches p_T (a deterministic flow carries any prior mismatch to the end).
  c.model.sigma_max = 20.0;
  c.sampling.method = parse_choice<SamplingMethod>(p.method, "sampling.method");
  c.sampling.predictor = parse_choice<Predictor>(p.predictor, "sampling.predictor");
  c.sampling.corrector = parse_choice<Corrector>(p.corrector, "sampling.corrector");
  validate(c);
  auto sde = make_sde(c);
  auto net = make_analytic_from_config(c, sde);
  auto score = make_score_fn(net.ptr(), sde, c.training.continuous);
  const int64_t n = 2000;
  torch::manual_seed(11);
  torch::NoGradGuard no_grad;
  auto x = sample_from_config(c, *sde, score, {n, 2}, torch::TensorOptions()).x.to(torch::kDouble);
  auto exact = net->sample(n, torch::kDouble);

  // Moments: mean (0.3, 0.3); covariance 0.25 I + w(1-w) d d^T with d = (3, 0.5).
  auto mean = x.mean(0);
  auto xc = x - mean;
  auto cov = xc.t().matmul(xc) / (n - 1);
  auto d = torch::tensor({3.0, 0.5}, torch::kDouble);
  auto true_cov = 0.25 * torch::eye(2, torch::kDouble) + 0.24 * d.unsqueeze(1) * d.unsqueeze(0);
  auto true_mean = torch::tensor({0.3, 0.3}, torch::kDouble);
  // 5 standard errors of the sample mean (var <= 2.41) and ~6% of the covariance.
  EXPECT_TRUE(torch::allclose(mean, true_mean, 0, 5 * std::sqrt(2.41 / n))) << mean;
  EXPECT_TRUE(torch::allclose(cov, true_cov, 0.06, 0.05)) << cov;

  // MMD^2 (bandwidth 0.5) to exact samples vs the floor: MMD^2 of 10 pairs of
  // independent exact draws. Pass if below their mean + 4 standard deviations.
  const double bw = 0.5;
  const double mmd = mmd2_unbiased(x, exact, bw);
  static const torch::Tensor f = [&] {  // the same target for every case: computed once
    std::vector<double> floor;
    for (int k = 0; k < 10; ++k)
      floor.push_back(mmd2_unbiased(net->sample(n, torch::kDouble), net->sample(n, torch::kDouble), bw));
    return torch::tensor(floor, torch::kDouble);
  }();
  const double limit = f.mean().item<double>() + 4 * f.std().item<double>();
  EXPECT_LT(mmd, limit) << p.name << ": MMD^2 " << mmd << ", floor " << f.mean().item<double>()
                        << " +- " << f.std().item<double>();
}

INSTANTIATE_TEST_SUITE_P(
    All, SamplerMmd,
    ::testing::Values(Case{"vp_pc_em", "vpsde", "pc", "euler_maruyama", "none"},
                      Case{"subvp_pc_em", "subvpsde", "pc", "euler_maruyama", "none"},
                      Case{"ve_pc_rd_langevin", "vesde", "pc", "reverse_diffusion", "langevin"},
                      Case{"vp_pc_ancestral", "vpsde", "pc", "ancestral_sampling", "none"},
                      Case{"ve_pc_ald", "vesde", "pc", "reverse_diffusion", "ald"},
                      Case{"vp_ode", "vpsde", "ode", "none", "none"},
                      Case{"ve_ode", "vesde", "ode", "none", "none"},
                      Case{"vp_edm", "vpsde", "edm", "none", "none"},
                      Case{"ve_edm", "vesde", "edm", "none", "none"},
                      Case{"vp_ddim", "vpsde", "ddim", "none", "none"},
                      Case{"vp_dpm_solver_pp", "vpsde", "dpm_solver_pp", "none", "none"},
                      Case{"subvp_dpm_solver_pp", "subvpsde", "dpm_solver_pp", "none", "none"},
                      Case{"vp_unipc", "vpsde", "unipc", "none", "none"},
                      Case{"ve_unipc", "vesde", "unipc", "none", "none"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace scorch
