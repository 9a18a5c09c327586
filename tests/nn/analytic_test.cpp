// The analytic Gaussian-mixture score with full covariances, against closed
// forms: log-density of a multivariate normal, score = gradient of log p_t
// (autograd), sample moments; and its construction from a config.
#include <gtest/gtest.h>

#include "core/config.h"
#include "core/error.h"
#include "nn/analytic.h"
#include "nn/model_factory.h"

namespace scorch {
namespace {

const double kPi = std::acos(-1.0);

torch::Tensor covariance_2d(double a, double b, double c) {  // [[a, c], [c, b]]
  return torch::tensor({a, c, c, b}, torch::kFloat64).view({2, 2});
}

TEST(AnalyticCovariance, LogProbIsTheMultivariateNormal) {
  auto sde = std::make_shared<VPSde>(0.1, 20.0, 1000);
  auto mu = torch::tensor({1.0, -2.0}, torch::kFloat64);
  auto cov = covariance_2d(2.0, 0.5, 0.7);
  AnalyticScoreNet net(sde, true, mu.view({1, 2}), torch::ones({1}, torch::kFloat64),
                       cov.unsqueeze(0));
  auto x = torch::randn({16, 2}, torch::kFloat64);
  for (double t : {1e-3, 0.3, 0.9}) {
    auto tt = torch::full({16}, t, torch::kFloat64);
    auto mp = sde->marginal_prob(torch::ones({1, 1}, torch::kFloat64), tt.narrow(0, 0, 1));
    const double m = mp.mean.item<double>(), s = mp.std.item<double>();
    auto c = m * m * cov + s * s * torch::eye(2, torch::kFloat64);
    auto r = x - m * mu;
    auto quad = (r.matmul(torch::inverse(c)) * r).sum(1);
    auto expected = -0.5 * quad - 0.5 * torch::log(torch::det(2 * kPi * c));
    EXPECT_TRUE(torch::allclose(net->log_prob(x, tt), expected, 1e-9, 1e-9)) << "t " << t;
  }
}

TEST(AnalyticCovariance, ScoreIsTheGradientOfLogProb) {
  auto sde = std::make_shared<VESde>(0.01, 10.0, 1000);
  auto means = torch::tensor({0.0, 0.0, 3.0, 1.0}, torch::kFloat64).view({2, 2});
  auto covs = torch::stack({covariance_2d(1.0, 0.2, 0.3), covariance_2d(0.3, 2.0, -0.5)});
  AnalyticScoreNet net(sde, true, means, torch::tensor({0.3, 0.7}, torch::kFloat64), covs);
  auto x = (2 * torch::randn({32, 2}, torch::kFloat64)).requires_grad_(true);
  auto t = torch::rand({32}, torch::kFloat64) * 0.9 + 0.05;
  auto grad = torch::autograd::grad({net->log_prob(x, t).sum()}, {x})[0];
  EXPECT_TRUE(torch::allclose(net->score(x.detach(), t), grad, 1e-8, 1e-8));
}

TEST(AnalyticCovariance, SamplesHaveTheMixtureMoments) {
  torch::manual_seed(3);
  auto sde = std::make_shared<VPSde>(0.1, 20.0, 1000);
  auto means = torch::tensor({-2.0, 0.0, 2.0, 1.0}, torch::kFloat64).view({2, 2});
  auto covs = torch::stack({covariance_2d(1.0, 0.5, 0.4), covariance_2d(0.5, 1.0, -0.3)});
  auto w = torch::tensor({0.25, 0.75}, torch::kFloat64);
  AnalyticScoreNet net(sde, true, means, w, covs);
  const int64_t n = 200000;
  auto x = net->sample(n, torch::kFloat64);
  auto mean = (w.view({2, 1}) * means).sum(0);
  // Law of total covariance: sum_k w_k (Sigma_k + mu_k mu_k^T) - mean mean^T.
  auto second = (w.view({2, 1, 1}) * (covs + means.unsqueeze(2) * means.unsqueeze(1))).sum(0);
  auto cov = second - mean.unsqueeze(1) * mean.unsqueeze(0);
  auto xc = x - x.mean(0);
  EXPECT_TRUE(torch::allclose(x.mean(0), mean, 0, 4 * std::sqrt(2.5 / n)));
  EXPECT_TRUE(torch::allclose(xc.t().matmul(xc) / (n - 1), cov, 0, 0.03));
}

TEST(AnalyticCovariance, FromConfig) {
  Config c;
  c.model.name = ModelName::kAnalytic;
  c.model.analytic_means = {0, 0, 4, 4};
  c.model.analytic_covariances = {1, 0, 0, 1, 2, 0.5, 0.5, 1};
  validate(c);
  auto sde = std::make_shared<VPSde>(0.1, 20.0, 1000);
  auto net = make_analytic_from_config(c, sde);
  EXPECT_TRUE(net->has_covariances());
  EXPECT_EQ(net->means().sizes(), (std::vector<int64_t>{2, 2}));
  c.model.analytic_covariances = {1, 0, 0, 1, 1, 2, 2, 1};  // eigenvalues 3, -1
  EXPECT_THROW(make_analytic_from_config(c, sde), Error);
  c.model.analytic_covariances = {1, 0, 0};
  EXPECT_THROW(validate(c), Error);
  c.model.analytic_covariances.clear();
  c.model.analytic_means = {1, 2, 3};  // not K * 2
  EXPECT_THROW(validate(c), Error);
  c.model.analytic_means = {1, 2};
  EXPECT_THROW(make_score_net(c), Error);  // nothing to train
}

}  // namespace
}  // namespace scorch
