// Tests of the network-output -> score conventions of score_sde models/utils.py
// get_score_fn, and of the analytic Gaussian / mixture score networks against
// closed-form scores and autograd of the mixture density.
#include "nn/score_model.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <vector>

#include "nn/analytic.h"
#include "testing/recording_net.h"

namespace scorch {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
constexpr double kBeta0 = 0.1, kBeta1 = 20.0;

double vp_mean_coeff(double t) {
  return std::exp(-0.25 * t * t * (kBeta1 - kBeta0) - 0.5 * t * kBeta0);
}

using testing::RecordingNet;

double alpha_bar(int64_t i, int64_t n) {
  double abar = 1.0;
  for (int64_t k = 0; k <= i; ++k) abar *= 1.0 - (kBeta0 + (kBeta1 - kBeta0) * k / (n - 1.0)) / n;
  return abar;
}

TEST(ScoreFn, VpContinuousUses999TAndMarginalStd) {
  VPSde sde(kBeta0, kBeta1, 1000);
  RecordingNet net;
  auto x = torch::randn({3, 2, 2, 2}, kF64);
  auto t = torch::tensor({0.01, 0.5, 1.0}, kF64);
  auto labels = torch::tensor({1, 0, 2}, torch::kLong);
  auto s = score_fn(net, sde, true, x, t, labels);
  EXPECT_TRUE(torch::allclose(net.last_time_cond, t * 999.0));
  EXPECT_TRUE(torch::equal(net.last_labels, labels));
  for (int64_t b = 0; b < 3; ++b) {
    const double m = vp_mean_coeff(t[b].item<double>());
    EXPECT_TRUE(torch::allclose(s[b], -(2.0 * x[b] + 1.0) / std::sqrt(1.0 - m * m)));
  }
}

TEST(ScoreFn, SubVpAlwaysUsesContinuousConvention) {
  SubVPSde sde(kBeta0, kBeta1, 1000);
  RecordingNet net;
  auto x = torch::randn({2, 3}, kF64);
  auto t = torch::tensor({0.2, 0.7}, kF64);
  for (bool continuous : {true, false}) {
    auto s = score_fn(net, sde, continuous, x, t);
    EXPECT_TRUE(torch::allclose(net.last_time_cond, t * 999.0));
    EXPECT_FALSE(net.last_labels.defined());
    for (int64_t b = 0; b < 2; ++b) {
      const double m = vp_mean_coeff(t[b].item<double>());
      EXPECT_TRUE(torch::allclose(s[b], -(2.0 * x[b] + 1.0) / (1.0 - m * m)));
    }
  }
}

TEST(ScoreFn, VpDiscreteUsesLevelAndAlphaBarTable) {
  const int64_t n = 1000;
  VPSde sde(kBeta0, kBeta1, n);
  RecordingNet net;
  auto x = torch::randn({3, 4}, kF64);
  auto t = torch::tensor({0.0, 0.5, 1.0}, kF64);
  auto s = score_fn(net, sde, false, x, t);
  EXPECT_TRUE(net.last_time_cond.is_floating_point());
  EXPECT_TRUE(torch::allclose(net.last_time_cond, torch::tensor({0.0, 499.5, 999.0}, kF64)));
  const std::vector<int64_t> levels = {0, 499, 999};  // long(t (N - 1)) truncates 499.5
  for (int64_t b = 0; b < 3; ++b) {
    const double std = std::sqrt(1.0 - alpha_bar(levels[b], n));
    EXPECT_TRUE(torch::allclose(s[b], -(2.0 * x[b] + 1.0) / std, 1e-10)) << "b=" << b;
  }
}

TEST(ScoreFn, VeContinuousFeedsSigmaAndReturnsOutput) {
  VESde sde(0.01, 50.0, 1000);
  RecordingNet net;
  auto x = torch::randn({2, 3}, kF64);
  auto t = torch::tensor({0.0, 0.6}, kF64);
  auto s = score_fn(net, sde, true, x, t);
  EXPECT_NEAR(net.last_time_cond[0].item<double>(), 0.01, 1e-14);
  EXPECT_NEAR(net.last_time_cond[1].item<double>(), 0.01 * std::pow(5000.0, 0.6), 1e-10);
  EXPECT_TRUE(torch::allclose(s, 2.0 * x + 1.0));
}

TEST(ScoreFn, VeDiscreteFeedsRoundedReversedLevel) {
  VESde sde(0.01, 50.0, 1000);
  RecordingNet net;
  auto x = torch::randn({5, 2}, kF64);
  auto t = torch::tensor({0.0, 0.25, 0.5, 0.9995, 1.0}, kF64);
  auto s = score_fn(net, sde, false, x, t);
  ASSERT_EQ(net.last_time_cond.scalar_type(), torch::kLong);
  // round((1 - t) 999): 999, 749.25 -> 749, 499.5 -> 500 (half to even), 0.4995 -> 0, 0.
  const std::vector<int64_t> expected = {999, 749, 500, 0, 0};
  for (int64_t b = 0; b < 5; ++b) EXPECT_EQ(net.last_time_cond[b].item<int64_t>(), expected[b]);
  EXPECT_TRUE(torch::allclose(s, 2.0 * x + 1.0));
}

TEST(ScoreFn, MakeScoreFnPassesClassLabels) {
  auto sde = std::make_shared<VPSde>(kBeta0, kBeta1, 1000);
  auto net = std::make_shared<RecordingNet>();
  auto labels = torch::tensor({3, 4}, torch::kLong);
  auto fn = make_score_fn(net, sde, true, labels);
  auto x = torch::randn({2, 3}, kF64);
  auto t = torch::tensor({0.3, 0.9}, kF64);
  auto s = fn(x, t);
  EXPECT_TRUE(torch::equal(net->last_labels, labels));
  EXPECT_TRUE(torch::allclose(s, score_fn(*net, *sde, true, x, t, labels)));
}

// -(x - m mu) / (m^2 s^2 + sigma^2), the score of N(m mu, (m^2 s^2 + sigma^2) I).
torch::Tensor gaussian_score(const torch::Tensor& x, const torch::Tensor& mu, double s,
                             const std::vector<double>& m, const std::vector<double>& sigma) {
  std::vector<torch::Tensor> rows;
  for (size_t b = 0; b < m.size(); ++b) {
    const double v = m[b] * m[b] * s * s + sigma[b] * sigma[b];
    rows.push_back(-(x[b] - m[b] * mu) / v);
  }
  return torch::stack(rows);
}

TEST(AnalyticScoreNet, GaussianScoreForEveryConvention) {
  const int64_t n = 1000;
  auto mu = torch::tensor({1.0, -2.0, 0.5}, kF64);
  const double s = 0.7;
  auto x = torch::randn({3, 3}, kF64) * 2.0;
  auto t = torch::tensor({0.05, 0.5, 0.93}, kF64);
  std::vector<double> tv = {0.05, 0.5, 0.93};

  auto vp = std::make_shared<VPSde>(kBeta0, kBeta1, n);
  auto subvp = std::make_shared<SubVPSde>(kBeta0, kBeta1, n);
  auto ve = std::make_shared<VESde>(0.01, 50.0, n);
  std::vector<double> m(3), sigma(3);

  for (int64_t b = 0; b < 3; ++b) {
    m[b] = vp_mean_coeff(tv[b]);
    sigma[b] = std::sqrt(1.0 - m[b] * m[b]);
  }
  auto net = make_analytic_gaussian(vp, true, mu, s);
  EXPECT_TRUE(torch::allclose(score_fn(*net, *vp, true, x, t), gaussian_score(x, mu, s, m, sigma)));
  EXPECT_TRUE(torch::allclose(net->score(x, t), gaussian_score(x, mu, s, m, sigma)));

  for (int64_t b = 0; b < 3; ++b) sigma[b] = 1.0 - m[b] * m[b];
  net = make_analytic_gaussian(subvp, true, mu, s);
  EXPECT_TRUE(
      torch::allclose(score_fn(*net, *subvp, true, x, t), gaussian_score(x, mu, s, m, sigma)));

  for (int64_t b = 0; b < 3; ++b) {
    const double abar = alpha_bar(static_cast<int64_t>(std::floor(tv[b] * (n - 1))), n);
    m[b] = std::sqrt(abar);
    sigma[b] = std::sqrt(1.0 - abar);
  }
  net = make_analytic_gaussian(vp, false, mu, s);
  EXPECT_TRUE(
      torch::allclose(score_fn(*net, *vp, false, x, t), gaussian_score(x, mu, s, m, sigma)));

  for (int64_t b = 0; b < 3; ++b) {
    m[b] = 1.0;
    sigma[b] = 0.01 * std::pow(5000.0, tv[b]);
  }
  net = make_analytic_gaussian(ve, true, mu, s);
  EXPECT_TRUE(torch::allclose(score_fn(*net, *ve, true, x, t), gaussian_score(x, mu, s, m, sigma)));

  // VE discrete: level k = round((1 - t)(N - 1)) has sigma_asc[N - 1 - k].
  for (int64_t b = 0; b < 3; ++b) {
    const double k = std::nearbyint((1.0 - tv[b]) * (n - 1));
    sigma[b] = 0.01 * std::pow(5000.0, (n - 1 - k) / (n - 1.0));
  }
  net = make_analytic_gaussian(ve, false, mu, s);
  EXPECT_TRUE(
      torch::allclose(score_fn(*net, *ve, false, x, t), gaussian_score(x, mu, s, m, sigma)));
}

TEST(AnalyticScoreNet, MixtureScoreIsGradientOfLogDensity) {
  auto vp = std::make_shared<VPSde>(kBeta0, kBeta1, 1000);
  auto means = torch::tensor({{2.0, 0.0}, {-1.0, 1.5}, {0.0, -2.0}}, kF64);
  auto weights = torch::tensor({0.5, 0.3, 0.2}, kF64);
  const double s = 0.3;
  auto net = make_analytic_mixture(vp, true, means, weights * 10.0, s);  // normalised inside
  auto x = (torch::randn({4, 2}, kF64) * 1.5).requires_grad_(true);
  const std::vector<double> tv = {0.01, 0.1, 0.3, 0.8};
  auto t = torch::tensor(tv, kF64);

  // log p_t written out: log sum_k w_k N(x; m mu_k, v I) with v = m^2 s^2 + 1 - m^2.
  std::vector<torch::Tensor> logps;
  for (int64_t b = 0; b < 4; ++b) {
    const double m = vp_mean_coeff(tv[b]);
    const double v = m * m * s * s + 1.0 - m * m;
    torch::Tensor p = torch::zeros({}, kF64);
    for (int64_t k = 0; k < 3; ++k) {
      auto d2 = (x[b] - m * means[k]).pow(2).sum();
      p = p + weights[k] * torch::exp(-d2 / (2.0 * v)) / (2.0 * std::acos(-1.0) * v);
    }
    logps.push_back(torch::log(p));
  }
  auto logp = torch::stack(logps);
  auto grad = torch::autograd::grad({logp.sum()}, {x})[0];
  auto xd = x.detach();
  EXPECT_TRUE(torch::allclose(net->score(xd, t), grad, 1e-9, 1e-10));
  EXPECT_TRUE(torch::allclose(score_fn(*net, *vp, true, xd, t), grad, 1e-9, 1e-10));
  EXPECT_TRUE(torch::allclose(net->log_prob(xd, t), logp.detach(), 1e-10, 1e-12));
}

TEST(AnalyticScoreNet, SamplesHaveTheDataMoments) {
  torch::manual_seed(11);
  auto vp = std::make_shared<VPSde>(kBeta0, kBeta1, 1000);
  auto net = make_analytic_mixture(vp, true, torch::tensor({{-3.0}, {3.0}}, kF64),
                                   torch::tensor({0.25, 0.75}, kF64), 0.5);
  auto x = net->sample(40000, torch::kFloat64);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{40000, 1}));
  // Mean 0.25 (-3) + 0.75 (3) = 1.5; variance 0.25 + 9 - 1.5^2 + ... = s^2 + E[mu^2] - 1.5^2.
  const double var = 0.25 + 9.0 - 2.25;
  EXPECT_NEAR(x.mean().item<double>(), 1.5, 4.0 * std::sqrt(var / 40000.0));
  EXPECT_NEAR((x > 0).to(torch::kFloat64).mean().item<double>(), 0.75, 0.01);
}

}  // namespace
}  // namespace scorch
