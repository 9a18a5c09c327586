// Tests of the training losses: with the exact score of Gaussian data their
// expectations have closed forms (derived below), which Monte Carlo estimates
// must hit within a few standard errors; sliced score matching must equal the
// explicit score-matching objective E[tr(ds/dx) + 0.5 ||s||^2] for a linear
// score; gradients, label plumbing, the factory and QuartileStats.
//
// Closed form used throughout: data x0 ~ N(mu, s^2 I), x_t = m x0 + sigma z, exact
// score s(x) = -(x - m mu) / v with v = m^2 s^2 + sigma^2. Then per coordinate
//   E[(s sigma + z)^2] = E[(z (1 - sigma^2/v) - sigma m s e / v)^2] = m^2 s^2 / v.
#include "losses/loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "losses/losses.h"
#include "nn/analytic.h"
#include "testing/expect_error.h"  // defines: testing::expect_error
#include "testing/recording_net.h"

namespace scorch {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
constexpr double kBeta0 = 0.1, kBeta1 = 20.0;

double vp_m(double t) { return std::exp(-0.25 * t * t * (kBeta1 - kBeta0) - 0.5 * t * kBeta0); }

// Composite Simpson rule on [a, b].
double integrate(const std::function<double(double)>& f, double a, double b, int n = 20000) {
  const double h = (b - a) / n;
  double acc = f(a) + f(b);
  for (int i = 1; i < n; ++i) acc += f(a + i * h) * (i % 2 ? 4.0 : 2.0);
  return acc * h / 3.0;
}

// Expectation over U(eps, 1).
double average_over_t(const std::function<double(double)>& f, double eps) {
  return integrate(f, eps, 1.0) / (1.0 - eps);
}

// The batch mean agrees with `expected` within 4.5 standard errors.
void expect_mean_near(const LossOutput& out, double expected, const std::string& what) {
  const int64_t n = out.per_sample.numel();
  const double se = out.per_sample.std().item<double>() / std::sqrt(static_cast<double>(n));
  EXPECT_NEAR(out.loss.item<double>(), expected, 4.5 * se) << what << " (se " << se << ")";
  EXPECT_NEAR(out.loss.item<double>(), out.per_sample.mean().item<double>(), 1e-12);
}

torch::Tensor gaussian_data(int64_t n, const torch::Tensor& mu, double s) {
  return mu.unsqueeze(0) + s * torch::randn({n, mu.numel()}, kF64);
}

TEST(DsmLoss, ExactScoreMatchesClosedFormVp) {
  torch::manual_seed(1);
  auto sde = std::make_shared<VPSde>(kBeta0, kBeta1, 1000);
  auto mu = torch::tensor({1.0, -0.5, 2.0, 0.0}, kF64);
  const double s = 0.6, eps = 1e-5;
  auto net = make_analytic_gaussian(sde, true, mu, s);
  DsmLoss loss(sde, {/*reduce_mean=*/true, /*likelihood_weighting=*/false, eps});
  auto out = loss(*net, gaussian_data(100000, mu, s));
  ASSERT_EQ(out.per_sample.sizes(), (std::vector<int64_t>{100000}));
  EXPECT_GE(out.t.min().item<double>(), eps);
  EXPECT_LE(out.t.max().item<double>(), 1.0);
  const double expected = average_over_t(
      [&](double t) {
        const double m2s2 = vp_m(t) * vp_m(t) * s * s;
        return m2s2 / (m2s2 + 1.0 - vp_m(t) * vp_m(t));
      },
      eps);
  expect_mean_near(out, expected, "VP DSM");
}

TEST(DsmLoss, ExactScoreMatchesClosedFormSubVpAndVeSum) {
  torch::manual_seed(2);
  auto mu = torch::tensor({0.5, -1.0, 1.5}, kF64);
  const double s = 0.8, eps = 1e-3;
  auto subvp = std::make_shared<SubVPSde>(kBeta0, kBeta1, 1000);
  auto out = DsmLoss(subvp, {true, false, eps})(*make_analytic_gaussian(subvp, true, mu, s),
                                                gaussian_data(100000, mu, s));
  expect_mean_near(out,
                   average_over_t(
                       [&](double t) {
                         const double m2 = vp_m(t) * vp_m(t), sigma = 1.0 - m2;
                         return m2 * s * s / (m2 * s * s + sigma * sigma);
                       },
                       eps),
                   "sub-VP DSM");

  // VE with the 0.5-sum reduction: D/2 E_t[s^2 / (s^2 + sigma^2)].
  auto ve = std::make_shared<VESde>(0.01, 5.0, 1000);
  out = DsmLoss(ve, {false, false, eps})(*make_analytic_gaussian(ve, true, mu, s),
                                         gaussian_data(100000, mu, s));
  expect_mean_near(out,
                   1.5 * average_over_t(
                             [&](double t) {
                               const double sigma = 0.01 * std::pow(500.0, t);
                               return s * s / (s * s + sigma * sigma);
                             },
                             eps),
                   "VE DSM");
}

TEST(DsmLoss, LikelihoodWeightingMatchesClosedFormVe) {
  // l = R((s + z/sigma)^2) g^2 = R((s sigma + z)^2) g^2 / sigma^2, g^2 / sigma^2 = 2 ln(r).
  torch::manual_seed(3);
  auto ve = std::make_shared<VESde>(0.01, 5.0, 1000);
  auto mu = torch::tensor({0.0, 1.0}, kF64);
  const double s = 0.4, eps = 1e-5;
  auto out = DsmLoss(ve, {true, true, eps})(*make_analytic_gaussian(ve, true, mu, s),
                                            gaussian_data(100000, mu, s));
  expect_mean_near(out,
                   2.0 * std::log(500.0) *
                       average_over_t(
                           [&](double t) {
                             const double sigma = 0.01 * std::pow(500.0, t);
                             return s * s / (s * s + sigma * sigma);
                           },
                           eps),
                   "VE DSM, likelihood weighting");
}

using testing::RecordingNet;

TEST(SmldLoss, ExactScoreMatchesFiniteSumOverLevels) {
  torch::manual_seed(4);
  const int64_t n = 10;
  auto ve = std::make_shared<VESde>(0.05, 3.0, n);
  auto mu = torch::tensor({1.0, 2.0, -1.0}, kF64);
  const double s = 0.5;
  auto net = make_analytic_gaussian(ve, false, mu, s);
  auto out = SmldLoss(ve, /*reduce_mean=*/false)(*net, gaussian_data(100000, mu, s));
  double expected = 0.0;
  for (int64_t k = 0; k < n; ++k) {
    const double sigma = 0.05 * std::pow(60.0, k / (n - 1.0));
    expected += 1.5 * s * s / (s * s + sigma * sigma) / n;
  }
  expect_mean_near(out, expected, "SMLD");

  // Labels are int64 levels k (0 = sigma_max) and t = 1 - k / (N - 1).
  RecordingNet rec;
  auto labels = torch::randint(0, 5, {64}, torch::kLong);
  auto r = SmldLoss(ve, true)(rec, torch::randn({64, 3}, kF64), labels);
  ASSERT_EQ(rec.last_time_cond.scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(rec.last_labels, labels));
  EXPECT_TRUE(torch::allclose(r.t, 1.0 - rec.last_time_cond.to(torch::kFloat64) / (n - 1.0)));
  EXPECT_GE(rec.last_time_cond.min().item<int64_t>(), 0);
  EXPECT_LE(rec.last_time_cond.max().item<int64_t>(), n - 1);
}

TEST(DdpmLoss, ExactNoisePredictionMatchesFiniteSumOverLevels) {
  torch::manual_seed(5);
  const int64_t n = 20;
  auto vp = std::make_shared<VPSde>(kBeta0, kBeta1, n);
  auto mu = torch::tensor({0.3, -0.7}, kF64);
  const double s = 0.5;
  auto net = make_analytic_gaussian(vp, false, mu, s);
  auto out = DdpmLoss(vp, /*reduce_mean=*/true)(*net, gaussian_data(100000, mu, s));
  double expected = 0.0, abar = 1.0;
  for (int64_t k = 0; k < n; ++k) {
    abar *= 1.0 - (kBeta0 + (kBeta1 - kBeta0) * k / (n - 1.0)) / n;
    expected += abar * s * s / (abar * s * s + 1.0 - abar) / n;
  }
  expect_mean_near(out, expected, "DDPM");

  RecordingNet rec;
  auto labels = torch::tensor({7, 1}, torch::kLong);
  auto r = DdpmLoss(vp, true)(rec, torch::randn({2, 2}, kF64), labels);
  EXPECT_TRUE(rec.last_time_cond.is_floating_point());
  EXPECT_TRUE(torch::equal(rec.last_time_cond, torch::round(rec.last_time_cond)));
  EXPECT_TRUE(torch::equal(rec.last_labels, labels));
  EXPECT_TRUE(torch::allclose(r.t, rec.last_time_cond / (n - 1.0)));
}

TEST(SsmLoss, ExactScoreGivesDsmMinusConstantForAllEstimators) {
  // E[tr(ds/dx) + 0.5 ||s||^2] = -D / v + D / (2 v) = -D / (2 v); with the mean
  // reduction's weight 2 sigma^2 / D the loss is -sigma^2 / v = E[DSM] - 1.
  auto vp = std::make_shared<VPSde>(kBeta0, kBeta1, 1000);
  auto mu = torch::tensor({1.0, 0.0, -1.0}, kF64);
  const double s = 0.5, eps = 1e-3;
  auto net = make_analytic_gaussian(vp, true, mu, s);
  const double expected = average_over_t(
      [&](double t) {
        const double m2 = vp_m(t) * vp_m(t);
        return -(1.0 - m2) / (m2 * s * s + 1.0 - m2);
      },
      eps);
  int seed = 10;
  for (bool vr : {false, true}) {
    for (auto projection : {SsmProjection::kRademacher, SsmProjection::kGaussian}) {
      for (int64_t copies : {1, 2}) {
        torch::manual_seed(seed++);
        SsmLossOptions options;
        options.reduce_mean = true;
        options.eps = eps;
        options.variance_reduced = vr;
        options.projection = projection;
        options.num_projections = copies;
        auto out = SsmLoss(vp, options)(*net, gaussian_data(40000, mu, s));
        ASSERT_EQ(out.per_sample.sizes(), (std::vector<int64_t>{40000}));
        expect_mean_near(out, expected,
                         "ssm vr=" + std::to_string(vr) +
                             " gaussian=" + std::to_string(projection == SsmProjection::kGaussian) +
                             " copies=" + std::to_string(copies));
      }
    }
  }
}

// s(x) = x A^T + b: a linear score with a non-symmetric Jacobian A.
class LinearNet : public ScoreNetImpl {
 public:
  explicit LinearNet(torch::Tensor a, torch::Tensor b) {
    a_ = register_parameter("a", a);
    b_ = register_parameter("b", b);
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&,
                        const torch::Tensor&) override {
    return torch::matmul(x, a_.t()) + b_;
  }
  torch::Tensor a_, b_;
};

TEST(SsmLoss, EqualsExplicitScoreMatchingForLinearScore) {
  // VE, so score = output and x_t ~ N(mu, (s^2 + sigma^2) I):
  // E[tr A + 0.5 ||A x + b||^2] = tr A + 0.5 (tr(A^T A)(s^2 + sigma^2) + ||A mu + b||^2),
  // weighted by sigma^2 (0.5-sum reduction).
  auto ve = std::make_shared<VESde>(0.1, 2.0, 1000);
  auto a = torch::tensor({{-1.0, 0.5, 0.0}, {0.2, -0.8, 0.3}, {-0.4, 0.1, -1.5}}, kF64);
  auto b = torch::tensor({0.3, -0.2, 0.1}, kF64);
  auto mu = torch::tensor({1.0, -1.0, 0.5}, kF64);
  const double s = 0.7, eps = 1e-5;
  LinearNet net(a.clone(), b.clone());
  const double tr_a = a.trace().item<double>();
  const double tr_ata = a.pow(2).sum().item<double>();
  const double shift = (torch::matmul(a, mu) + b).pow(2).sum().item<double>();
  const double expected = average_over_t(
      [&](double t) {
        const double sigma = 0.1 * std::pow(20.0, t);
        return sigma * sigma * (tr_a + 0.5 * (tr_ata * (s * s + sigma * sigma) + shift));
      },
      eps);
  int seed = 30;
  for (bool vr : {false, true}) {
    for (auto projection : {SsmProjection::kRademacher, SsmProjection::kGaussian}) {
      torch::manual_seed(seed++);
      SsmLossOptions options;
      options.reduce_mean = false;
      options.eps = eps;
      options.variance_reduced = vr;
      options.projection = projection;
      auto out = SsmLoss(ve, options)(net, gaussian_data(100000, mu, s));
      expect_mean_near(out, expected, "linear ssm vr=" + std::to_string(vr));
    }
  }
}

TEST(SsmLoss, GradientMatchesFiniteDifferences) {
  // The v^T J v term depends on the parameters only through the Jacobian, so its
  // gradient exists only with create_graph. Same draws (same seed) on each side.
  auto ve = std::make_shared<VESde>(0.1, 2.0, 100);
  auto a = torch::tensor({{-1.0, 0.5}, {0.2, -0.8}}, kF64);
  auto b = torch::tensor({0.3, -0.2}, kF64);
  SsmLossOptions options;
  options.reduce_mean = true;
  options.num_projections = 3;
  SsmLoss loss(ve, options);
  auto x = torch::randn({64, 2}, kF64);
  LinearNet net(a.clone(), b.clone());
  torch::manual_seed(77);
  loss(net, x).loss.backward();
  auto grad = net.a_.grad().clone();
  const double h = 1e-5;
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 2; ++j) {
      auto eval = [&](double delta) {
        auto ap = a.clone();
        ap[i][j] += delta;
        LinearNet shifted(ap, b.clone());
        torch::manual_seed(77);
        return loss(shifted, x).loss.item<double>();
      };
      const double fd = (eval(h) - eval(-h)) / (2.0 * h);
      EXPECT_NEAR(grad[i][j].item<double>(), fd, 1e-6 * (1.0 + std::abs(fd)));
    }
  }
  // Evaluation without grad mode still works and returns a detached loss.
  torch::NoGradGuard no_grad;
  auto out = loss(net, x);
  EXPECT_FALSE(out.loss.requires_grad());
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
}

TEST(Losses, AreDifferentiableAndPassClassLabels) {
  auto vp = std::make_shared<VPSde>(kBeta0, kBeta1, 1000);
  auto x = torch::randn({8, 2}, kF64);
  auto labels = torch::arange(8, torch::kLong);
  LinearNet net(torch::eye(2, kF64) * -1.0, torch::zeros({2}, kF64));
  auto out = DsmLoss(vp, {})(net, x, labels);
  EXPECT_TRUE(out.loss.requires_grad());
  EXPECT_FALSE(out.per_sample.requires_grad());
  EXPECT_FALSE(out.t.requires_grad());
  out.loss.backward();
  EXPECT_GT(net.a_.grad().abs().sum().item<double>(), 0.0);

  RecordingNet rec;
  DsmLoss(vp, {})(rec, x, labels);
  EXPECT_TRUE(torch::equal(rec.last_labels, labels));
  SsmLossOptions options;
  options.num_projections = 3;
  SsmLoss(vp, options)(rec, x, labels);
  EXPECT_TRUE(torch::equal(rec.last_labels, labels.repeat({3})));
}

TEST(MakeLoss, ResolvesAutoAndRejectsBadCombinations) {
  // The factory builds what the config names; every combination it cannot
  // build is refused when the config is parsed, naming the key.
  auto loss_for = [](const std::vector<std::string>& overrides) {
    const Config config = parse_config("{}", "test", overrides);
    return make_loss(config, make_sde(config));
  };
  EXPECT_NE(dynamic_cast<DsmLoss*>(loss_for({"training.sde=vesde"}).get()), nullptr);
  EXPECT_NE(dynamic_cast<SmldLoss*>(
                loss_for({"training.sde=vesde", "training.continuous=false"}).get()),
            nullptr);
  EXPECT_NE(dynamic_cast<DdpmLoss*>(
                loss_for({"training.sde=vpsde", "training.continuous=false"}).get()),
            nullptr);
  EXPECT_NE(dynamic_cast<SsmLoss*>(loss_for({"training.sde=subvpsde", "training.loss=ssm_vr",
                                             "training.ssm_projection=gaussian"})
                                       .get()),
            nullptr);

  auto expect_error = [](const std::vector<std::string>& overrides, const std::string& key) {
    testing::expect_error([&] { parse_config("{}", "test", overrides); }, {key});
  };
  expect_error({"training.sde=subvpsde", "training.continuous=false"}, "training.continuous");
  expect_error({"training.sde=vesde", "training.continuous=false", "training.loss=ddpm"},
               "training.sde");
  expect_error({"training.sde=vpsde", "training.continuous=false", "training.loss=dsm"},
               "training.continuous");
  expect_error({"training.loss=esm", "training.continuous=false"}, "training.continuous");
  expect_error({"training.loss=ssm_vr", "training.ssm_projection=sphere"},
               "training.ssm_projection");
  expect_error({"training.loss=dsn"}, "training.loss");
  expect_error({"training.timestep_sampler=loss_second_moment"}, "training.timestep_sampler");
}

TEST(QuartileStats, AccumulatesSumsAndCountsByQuartile) {
  LossOutput out;
  out.t = torch::tensor({0.0, 0.1, 0.25, 0.49, 0.5, 0.75, 0.99, 1.0}, kF64);
  out.per_sample = torch::tensor({1.0, 3.0, 2.0, 4.0, 10.0, 5.0, 7.0, 9.0}, kF64);
  QuartileStats stats;
  stats.add(out);
  EXPECT_DOUBLE_EQ(stats.sum[0], 4.0);
  EXPECT_EQ(stats.count[0], 2);
  EXPECT_DOUBLE_EQ(stats.mean(1), 3.0);
  EXPECT_DOUBLE_EQ(stats.mean(2), 10.0);
  EXPECT_EQ(stats.count[3], 3);
  EXPECT_DOUBLE_EQ(stats.mean(3), 7.0);
  QuartileStats other;
  EXPECT_TRUE(std::isnan(other.mean(2)));
  other.add(out);
  stats.merge(other);
  stats.add(out);
  EXPECT_EQ(stats.count[3], 9);
  EXPECT_DOUBLE_EQ(stats.sum[1], 18.0);
  EXPECT_DOUBLE_EQ(stats.mean(0), 2.0);
}

}  // namespace
}  // namespace scorch
