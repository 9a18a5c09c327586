// Tests of the VE, VP and sub-VP SDEs against closed forms (Song et al. 2021,
// appendix B), Monte Carlo simulation of the forward SDE, and the convergence of
// the SMLD / DDPM discretizations to the continuous marginals.
#include "sde/sde.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "testing/expect_error.h"  // defines: testing::expect_error

namespace scorch {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
constexpr double kBeta0 = 0.1, kBeta1 = 20.0;

// m(t) = exp(-t^2 (b1 - b0) / 4 - t b0 / 2), written out independently.
double vp_mean_coeff(double t) {
  return std::exp(-0.25 * t * t * (kBeta1 - kBeta0) - 0.5 * t * kBeta0);
}

double item(const torch::Tensor& v, int64_t i = 0) { return v[i].item<double>(); }

TEST(VPSde, MarginalMatchesClosedForm) {
  VPSde sde(kBeta0, kBeta1, 1000);
  const std::vector<double> ts = {0.0, 1e-3, 0.25, 0.5, 0.9, 1.0};
  auto t = torch::tensor(ts, kF64);
  auto x = torch::randn({6, 3, 2, 2}, kF64);
  auto mp = sde.marginal_prob(x, t);
  for (size_t i = 0; i < ts.size(); ++i) {
    const double m = vp_mean_coeff(ts[i]);
    EXPECT_NEAR(item(mp.std, i), std::sqrt(1.0 - m * m), 1e-12) << "t=" << ts[i];
    EXPECT_TRUE(torch::allclose(mp.mean[i], m * x[i], 1e-12, 1e-14));
  }
  auto dd = sde.sde(x, t);
  for (size_t i = 0; i < ts.size(); ++i) {
    const double beta = kBeta0 + ts[i] * (kBeta1 - kBeta0);
    EXPECT_NEAR(item(dd.diffusion, i), std::sqrt(beta), 1e-12);
    EXPECT_TRUE(torch::allclose(dd.drift[i], -0.5 * beta * x[i], 1e-12, 1e-14));
  }
}

TEST(SubVPSde, MarginalStdIsOneMinusMeanSquared) {
  SubVPSde sde(kBeta0, kBeta1, 1000);
  const std::vector<double> ts = {1e-4, 0.1, 0.5, 1.0};
  auto t = torch::tensor(ts, kF64);
  auto x = torch::randn({4, 5}, kF64);
  auto mp = sde.marginal_prob(x, t);
  auto dd = sde.sde(x, t);
  for (size_t i = 0; i < ts.size(); ++i) {
    const double m = vp_mean_coeff(ts[i]);
    EXPECT_NEAR(item(mp.std, i), 1.0 - m * m, 1e-12);
    EXPECT_TRUE(torch::allclose(mp.mean[i], m * x[i], 1e-12, 1e-14));
    const double beta = kBeta0 + ts[i] * (kBeta1 - kBeta0);
    const double discount =
        1.0 - std::exp(-2.0 * kBeta0 * ts[i] - (kBeta1 - kBeta0) * ts[i] * ts[i]);
    EXPECT_NEAR(item(dd.diffusion, i), std::sqrt(beta * discount), 1e-10);
  }
}

TEST(VESde, SigmaAndDiffusionMatchClosedForm) {
  VESde sde(0.01, 50.0, 1000);
  const std::vector<double> ts = {0.0, 0.3, 1.0};
  auto t = torch::tensor(ts, kF64);
  auto x = torch::randn({3, 4}, kF64);
  auto mp = sde.marginal_prob(x, t);
  auto dd = sde.sde(x, t);
  EXPECT_TRUE(torch::equal(mp.mean, x));
  EXPECT_EQ(dd.drift.abs().max().item<double>(), 0.0);
  for (size_t i = 0; i < ts.size(); ++i) {
    const double sigma = 0.01 * std::pow(5000.0, ts[i]);
    EXPECT_NEAR(item(mp.std, i), sigma, 1e-12 * sigma);
    EXPECT_NEAR(item(dd.diffusion, i), sigma * std::sqrt(2.0 * std::log(5000.0)), 1e-10 * sigma);
  }
  EXPECT_NEAR(item(sde.sigma(torch::ones({1}, kF64))), 50.0, 1e-10);
}

TEST(Sde, ComputesInTheInputDtype) {
  VPSde vp(kBeta0, kBeta1, 100);
  SubVPSde subvp(kBeta0, kBeta1, 100);
  VESde ve(0.01, 50.0, 100);
  for (const Sde* sde : std::vector<const Sde*>{&vp, &subvp, &ve}) {
    for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
      auto x = torch::randn({4, 2}, torch::TensorOptions().dtype(dtype));
      auto t = torch::rand({4}, torch::kFloat32);
      EXPECT_EQ(sde->sde(x, t).drift.scalar_type(), dtype);
      EXPECT_EQ(sde->sde(x, t).diffusion.scalar_type(), dtype);
      EXPECT_EQ(sde->marginal_prob(x, t).std.scalar_type(), dtype);
      EXPECT_EQ(sde->discretize(x, t).diffusion.scalar_type(), dtype);
      EXPECT_EQ(sde->discretize(x, t).drift.scalar_type(), dtype);
    }
  }
}

// Euler–Maruyama simulation of dx = f dt + g dw from x(0) = x0 to t_end.
torch::Tensor simulate(const Sde& sde, double x0, int64_t particles, int64_t steps, double t_end) {
  auto x = torch::full({particles, 1}, x0, kF64);
  const double dt = t_end / static_cast<double>(steps);
  for (int64_t k = 0; k < steps; ++k) {
    auto t = torch::full({particles}, k * dt, kF64);
    auto dd = sde.sde(x, t);
    x = x + dd.drift * dt + batch_view(dd.diffusion, x) * std::sqrt(dt) * torch::randn_like(x);
  }
  return x;
}

// Mean and std of the simulated particles agree with marginal_prob within a few
// standard errors (std error of the std ~ std / sqrt(2 n)).
void expect_marginal_matches_simulation(const Sde& sde, double x0, double t_end) {
  torch::manual_seed(1234);
  torch::set_num_threads(1);  // 20k-element ops: threading only adds overhead
  const int64_t n = 20000;
  auto x = simulate(sde, x0, n, 1000, t_end);
  auto mp = sde.marginal_prob(torch::full({1, 1}, x0, kF64), torch::full({1}, t_end, kF64));
  const double mean = mp.mean.item<double>(), std = mp.std.item<double>();
  const double se_mean = std / std::sqrt(n), se_std = std / std::sqrt(2.0 * n);
  EXPECT_NEAR(x.mean().item<double>(), mean, 4.0 * se_mean) << "t=" << t_end;
  EXPECT_NEAR(x.std().item<double>(), std, 4.0 * se_std + 2e-3 * std) << "t=" << t_end;
}

TEST(VPSde, MarginalMatchesEulerMaruyamaSimulation) {
  VPSde sde(kBeta0, kBeta1, 1000);
  expect_marginal_matches_simulation(sde, 2.0, 0.4);
  expect_marginal_matches_simulation(sde, 2.0, 1.0);
}

TEST(SubVPSde, MarginalMatchesEulerMaruyamaSimulation) {
  SubVPSde sde(kBeta0, kBeta1, 1000);
  expect_marginal_matches_simulation(sde, 2.0, 0.2);
  expect_marginal_matches_simulation(sde, -1.5, 1.0);
}

TEST(VESde, MarginalMatchesEulerMaruyamaSimulation) {
  // The simulated variance is sigma(t)^2 - sigma_min^2; marginal_prob (as the
  // reference) reports sigma(t). With sigma_min = 0.01 the difference is < 1e-4.
  VESde sde(0.01, 5.0, 1000);
  expect_marginal_matches_simulation(sde, 3.0, 0.5);
  expect_marginal_matches_simulation(sde, 3.0, 1.0);
}

TEST(VPSde, DiscreteTablesAreDdpmLinearSchedule) {
  VPSde sde(kBeta0, kBeta1, 1000);
  ASSERT_EQ(sde.discrete_betas().numel(), 1000);
  EXPECT_EQ(sde.discrete_betas().scalar_type(), torch::kFloat64);
  EXPECT_NEAR(item(sde.discrete_betas(), 0), 1e-4, 1e-15);
  EXPECT_NEAR(item(sde.discrete_betas(), 999), 0.02, 1e-15);
  double abar = 1.0;
  for (int64_t k = 0; k < 1000; ++k) {
    const double beta = 1e-4 + (0.02 - 1e-4) * k / 999.0;
    abar *= 1.0 - beta;
    ASSERT_NEAR(item(sde.discrete_betas(), k), beta, 1e-15);
    ASSERT_NEAR(item(sde.alphas(), k), 1.0 - beta, 1e-15);
    ASSERT_NEAR(item(sde.alphas_cumprod(), k), abar, 1e-12 * abar);
  }
}

TEST(Sde, DiscreteLevelIsFloorOfTTimesNMinusOne) {
  auto t = torch::tensor({0.0, 0.5, 0.9999, 1.0}, kF64);
  auto level = discrete_level(t, 1000);
  EXPECT_EQ(level.scalar_type(), torch::kLong);
  EXPECT_EQ(level[0].item<int64_t>(), 0);
  EXPECT_EQ(level[1].item<int64_t>(), 499);  // floor(499.5)
  EXPECT_EQ(level[2].item<int64_t>(), 998);  // floor(998.9001)
  EXPECT_EQ(level[3].item<int64_t>(), 999);
}

// Runs the DDPM chain x_{k+1} = x_k + f_k + G_k z through discretize() for levels
// 0..i, tracking the mean coefficient and the variance exactly. Returns {a, v}:
// x_{i+1} ~ N(a x_0, v).
std::pair<double, double> vp_chain(const Sde& sde, int64_t last_level) {
  const int64_t n = sde.num_scales();
  double a = 1.0, v = 0.0;
  for (int64_t k = 0; k <= last_level; ++k) {
    // Mid-level time so that floor(t (N - 1)) is k regardless of rounding.
    auto t = torch::full({1}, std::min(1.0, (k + 0.5) / static_cast<double>(n - 1)), kF64);
    auto fg = sde.discretize(torch::ones({1, 1}, kF64), t);
    const double scale = 1.0 + fg.drift.item<double>();
    const double G = fg.diffusion.item<double>();
    a *= scale;
    v = scale * scale * v + G * G;
  }
  return {a, v};
}

TEST(VPSde, DdpmDiscretizationMarginalIsAlphaBarAndConverges) {
  // N >= 21 keeps beta_max / N < 1 (make_sde rejects smaller N).
  for (int64_t n : {25, 100, 1000}) {
    VPSde sde(kBeta0, kBeta1, n);
    for (int64_t i : {int64_t{0}, n / 2, n - 1}) {
      auto [a, v] = vp_chain(sde, i);
      const double abar = item(sde.alphas_cumprod(), i);
      EXPECT_NEAR(a, std::sqrt(abar), 1e-12);
      EXPECT_NEAR(v, 1.0 - abar, 1e-12);
    }
  }
  // log alpha_bar_{floor(t (N-1))} -> log m(t)^2 as N grows, with O(1/N) error.
  for (double t : {0.5, 1.0}) {
    std::vector<double> errors;
    for (int64_t n : {100, 1000, 10000}) {
      VPSde sde(kBeta0, kBeta1, n);
      const int64_t i = static_cast<int64_t>(std::floor(t * (n - 1)));
      const double m = vp_mean_coeff(t);
      errors.push_back(std::abs(std::log(item(sde.alphas_cumprod(), i)) - std::log(m * m)));
    }
    EXPECT_LT(errors[1], errors[0] / 4.0) << "t=" << t;
    EXPECT_LT(errors[2], errors[1] / 4.0) << "t=" << t;
    EXPECT_LT(errors[2], 0.02) << "t=" << t;
  }
}

TEST(VESde, SmldDiscretizationMarginalIsSigmaAndConverges) {
  for (int64_t n : {10, 100, 1000}) {
    VESde sde(0.01, 50.0, n);
    // Sum of G_k^2 over levels 0..i telescopes to sigma_i^2 (sigma_{-1} = 0), and
    // sigma_i = sigma(i / (N - 1)) on the geometric grid.
    for (int64_t i : {int64_t{0}, n / 3, n - 1}) {
      auto [a, v] = vp_chain(sde, i);
      const double ti = static_cast<double>(i) / static_cast<double>(n - 1);
      const double sigma = 0.01 * std::pow(5000.0, ti);
      EXPECT_EQ(a, 1.0);
      EXPECT_NEAR(v, sigma * sigma, 1e-10 * sigma * sigma);
    }
  }
  std::vector<double> errors;
  for (int64_t n : {10, 100, 1000}) {
    VESde sde(0.01, 50.0, n);
    const double t = 0.37;
    const int64_t i = static_cast<int64_t>(std::floor(t * (n - 1)));
    errors.push_back(std::abs(std::log(item(sde.discrete_sigmas(), i)) -
                              std::log(item(sde.sigma(torch::full({1}, t, kF64))))));
  }
  EXPECT_LT(errors[1], errors[0] / 4.0);
  EXPECT_LT(errors[2], errors[1] / 4.0);
}

TEST(SubVPSde, DiscretizeIsEulerMaruyama) {
  SubVPSde sde(kBeta0, kBeta1, 250);
  auto x = torch::randn({3, 2, 2}, kF64);
  auto t = torch::tensor({0.1, 0.5, 0.8}, kF64);
  auto fg = sde.discretize(x, t);
  auto dd = sde.sde(x, t);
  EXPECT_TRUE(torch::allclose(fg.drift, dd.drift / 250.0));
  EXPECT_TRUE(torch::allclose(fg.diffusion, dd.diffusion / std::sqrt(250.0)));
}

TEST(Sde, PriorLogpMatchesGaussianDensity) {
  VPSde vp(kBeta0, kBeta1, 10);
  SubVPSde subvp(kBeta0, kBeta1, 10);
  VESde ve(0.01, 7.0, 10);
  auto z = torch::randn({3, 2, 3, 2}, kF64) * 4.0;
  auto acc = z.flatten(1);
  const double log2pi = std::log(2.0 * std::acos(-1.0));
  for (int64_t b = 0; b < 3; ++b) {
    double standard = 0.0, wide = 0.0;
    for (int64_t d = 0; d < 12; ++d) {
      const double u = acc[b][d].item<double>();
      standard += -0.5 * log2pi - 0.5 * u * u;
      wide += -0.5 * log2pi - std::log(7.0) - 0.5 * u * u / 49.0;
    }
    EXPECT_NEAR(item(vp.prior_logp(z), b), standard, 1e-10);
    EXPECT_NEAR(item(subvp.prior_logp(z), b), standard, 1e-10);
    EXPECT_NEAR(item(ve.prior_logp(z), b), wide, 1e-10);
  }
}

TEST(Sde, PriorSamplingHasThePriorScale) {
  torch::manual_seed(3);
  VESde ve(0.01, 7.0, 10);
  VPSde vp(kBeta0, kBeta1, 10);
  auto a = ve.prior_sampling({20000, 2}, kF64);
  auto b = vp.prior_sampling({20000, 2}, torch::TensorOptions().dtype(torch::kFloat32));
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{20000, 2}));
  EXPECT_EQ(b.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(a.std().item<double>(), 7.0, 7.0 * 4.0 / std::sqrt(80000.0));
  EXPECT_NEAR(b.std().item<double>(), 1.0, 4.0 / std::sqrt(80000.0));
}

TEST(Sde, ReverseSdeAndProbabilityFlow) {
  VPSde sde(kBeta0, kBeta1, 1000);
  auto x = torch::randn({4, 3, 2, 2}, kF64);
  auto t = torch::tensor({0.1, 0.4, 0.6, 0.95}, kF64);
  ScoreFn score = [](const torch::Tensor& y, const torch::Tensor&) { return -3.0 * y + 0.5; };
  auto rev = sde.reverse_sde(score, x, t, false);
  auto pf = sde.reverse_sde(score, x, t, true);
  for (int64_t i = 0; i < 4; ++i) {
    const double beta = kBeta0 + item(t, i) * (kBeta1 - kBeta0);
    auto f = -0.5 * beta * x[i];
    auto s = -3.0 * x[i] + 0.5;
    EXPECT_TRUE(torch::allclose(rev.drift[i], f - beta * s));
    EXPECT_TRUE(torch::allclose(pf.drift[i], f - 0.5 * beta * s));
    EXPECT_NEAR(item(rev.diffusion, i), std::sqrt(beta), 1e-12);
  }
  ASSERT_TRUE(pf.diffusion.defined());
  EXPECT_EQ(pf.diffusion.sizes(), (std::vector<int64_t>{4}));
  EXPECT_EQ(pf.diffusion.scalar_type(), torch::kFloat64);
  EXPECT_EQ(pf.diffusion.abs().max().item<double>(), 0.0);
  // The pf diffusion broadcasts like any other (the reference's float 0 did not).
  EXPECT_NO_THROW(batch_view(pf.diffusion, x) * x);
}

TEST(Sde, ReverseDiscretizeMatchesReverseDiffusionPredictor) {
  // score_sde reverse_diffusion: x_mean = x - rev_f. VP: (2 - sqrt(1 - beta_i)) x + beta_i s;
  // VE: x + (sigma_i^2 - sigma_{i-1}^2) s.
  VPSde vp(kBeta0, kBeta1, 1000);
  VESde ve(0.01, 50.0, 1000);
  auto x = torch::randn({3, 2, 2}, kF64);
  auto t = torch::tensor({0.0, 0.5, 1.0}, kF64);
  ScoreFn score = [](const torch::Tensor& y, const torch::Tensor&) { return torch::sin(y); };
  auto s = torch::sin(x);
  auto rv = vp.reverse_discretize(score, x, t, false);
  auto re = ve.reverse_discretize(score, x, t, false);
  auto pf = vp.reverse_discretize(score, x, t, true);
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t i = b == 0 ? 0 : (b == 1 ? 499 : 999);
    const double beta = 1e-4 + (0.02 - 1e-4) * i / 999.0;
    EXPECT_TRUE(
        torch::allclose(x[b] - rv.drift[b], (2.0 - std::sqrt(1.0 - beta)) * x[b] + beta * s[b]));
    EXPECT_NEAR(item(rv.diffusion, b), std::sqrt(beta), 1e-12);
    EXPECT_TRUE(torch::allclose(x[b] - pf.drift[b],
                                (2.0 - std::sqrt(1.0 - beta)) * x[b] + 0.5 * beta * s[b]));
    const double sigma = 0.01 * std::pow(5000.0, i / 999.0);
    const double prev = i == 0 ? 0.0 : 0.01 * std::pow(5000.0, (i - 1) / 999.0);
    EXPECT_TRUE(torch::allclose(x[b] - re.drift[b], x[b] + (sigma * sigma - prev * prev) * s[b]));
  }
  EXPECT_EQ(pf.diffusion.abs().max().item<double>(), 0.0);
}

TEST(MakeSde, BuildsFromConfigAndNamesBadKeys) {
  Config config;
  config.training.sde = SdeKind::kVE;
  config.model.sigma_min = 0.02;
  config.model.sigma_max = 90.0;
  config.model.num_scales = 2000;
  auto ve = make_sde(config);
  ASSERT_EQ(ve->kind(), SdeKind::kVE);
  EXPECT_EQ(ve->num_scales(), 2000);
  EXPECT_EQ(static_cast<const VESde&>(*ve).sigma_max(), 90.0);
  config.training.sde = SdeKind::kSubVP;
  EXPECT_EQ(make_sde(config)->kind(), SdeKind::kSubVP);
  config.training.sde = SdeKind::kVP;
  config.model.beta_max = 15.0;
  auto vp = make_sde(config);
  ASSERT_EQ(vp->kind(), SdeKind::kVP);
  EXPECT_EQ(static_cast<const VPSde&>(*vp).beta_max(), 15.0);

  // Names and schedules are checked when the config is parsed.
  auto expect_error = [](const std::vector<std::string>& overrides, const std::string& key) {
    testing::expect_error([&] { parse_config("{}", "test", overrides); }, {key});
  };
  expect_error({"training.sde=vesdee"}, "training.sde");
  expect_error({"training.sde=vesde", "model.sigma_max=0.001"}, "model.sigma_max");
  expect_error({"training.sde=vpsde", "model.beta_min=0"}, "model.beta_min");
  expect_error({"training.sde=vpsde", "model.num_scales=10"}, "model.beta_max");
}

}  // namespace
}  // namespace scorch
