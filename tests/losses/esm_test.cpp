// Explicit score matching (EsmLoss) against closed forms. With the exact
// score of Gaussian data x0 ~ N(mu, s^2 I) under x_t = m x0 + sigma z, v =
// m^2 s^2 + sigma^2, the score is -(x - m mu) / v, tr(ds/dx) = -D / v and
// E||s||^2 = D / v, so E[tr + 0.5 ||s||^2] = -D / (2 v); with the mean
// reduction's weight 2 sigma^2 / D the loss is -sigma^2 / v, while DSM's is
// m^2 s^2 / v = 1 - sigma^2 / v (loss_test.cpp). For any network, Vincent
// (2011) gives E[DSM] - E[ESM] = K (D/2 for the 0.5-sum reduction, 1 for the
// mean, times lambda / sigma^2), and SSM is an unbiased estimate of ESM whose
// projection noise falls as 1/sqrt(projections). The trace is checked against
// central differences of the network at the perturbed inputs it was fed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "losses/loss.h"
#include "losses/losses.h"
#include "nn/analytic.h"
#include "testing/recording_net.h"

namespace scorch {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
constexpr double kBeta0 = 0.1, kBeta1 = 20.0;

double vp_m(double t) { return std::exp(-0.25 * t * t * (kBeta1 - kBeta0) - 0.5 * t * kBeta0); }

// Expectation over t ~ U(eps, 1), composite Simpson rule.
double average_over_t(const std::function<double(double)>& f, double eps, int n = 20000) {
  const double h = (1.0 - eps) / n;
  double acc = f(eps) + f(1.0);
  for (int i = 1; i < n; ++i) acc += f(eps + i * h) * (i % 2 ? 4.0 : 2.0);
  return acc * h / 3.0 / (1.0 - eps);
}

// mean(v) agrees with `expected` within 4.5 standard errors of v's mean.
void expect_mean_near(const torch::Tensor& v, double expected, const std::string& what) {
  const double se = v.std().item<double>() / std::sqrt(static_cast<double>(v.numel()));
  EXPECT_NEAR(v.mean().item<double>(), expected, 4.5 * se) << what << " (se " << se << ")";
}

torch::Tensor gaussian_data(int64_t n, const torch::Tensor& mu, double s) {
  return mu.unsqueeze(0) + s * torch::randn({n, mu.numel()}, kF64);
}

// s(x) = tanh(x W^T + c): a nonlinear score with a non-symmetric Jacobian
// diag(1 - s^2) W. Remembers the inputs of its last call.
class TanhNet : public ScoreNetImpl {
 public:
  TanhNet(torch::Tensor w, torch::Tensor c) {
    w_ = register_parameter("w", w);
    c_ = register_parameter("c", c);
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&,
                        const torch::Tensor&) override {
    last_input = x.detach().clone();
    return torch::tanh(torch::matmul(x, w_.t()) + c_);
  }
  torch::Tensor w_, c_, last_input;
};

// s(x) = x A^T + b.
class LinearNet : public ScoreNetImpl {
 public:
  LinearNet(torch::Tensor a, torch::Tensor b) {
    a_ = register_parameter("a", a);
    b_ = register_parameter("b", b);
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&,
                        const torch::Tensor&) override {
    return torch::matmul(x, a_.t()) + b_;
  }
  torch::Tensor a_, b_;
};

ContinuousLossOptions continuous(bool reduce_mean, double eps,
                                 bool likelihood_weighting = false) {
  ContinuousLossOptions o;
  o.reduce_mean = reduce_mean;
  o.eps = eps;
  o.likelihood_weighting = likelihood_weighting;
  return o;
}

TEST(EsmLoss, ExactScoreMatchesClosedFormAndDsmMinusOne) {
  auto vp = std::make_shared<VPSde>(kBeta0, kBeta1, 1000);
  auto mu = torch::tensor({1.0, 0.0, -1.0}, kF64);
  const double s = 0.5, eps = 1e-3;
  auto net = make_analytic_gaussian(vp, true, mu, s);
  const auto opts = continuous(/*reduce_mean=*/true, eps);
  torch::manual_seed(5);
  const auto x = gaussian_data(40000, mu, s);
  // Same seed: DSM and ESM draw the same t and perturbed samples.
  torch::manual_seed(6);
  auto esm = EsmLoss(vp, opts)(*net, x);
  torch::manual_seed(6);
  auto dsm = DsmLoss(vp, opts)(*net, x);
  ASSERT_TRUE(torch::equal(esm.t, dsm.t));
  const double expected_esm = average_over_t(
      [&](double t) {
        const double m2 = vp_m(t) * vp_m(t);
        return -(1.0 - m2) / (m2 * s * s + 1.0 - m2);
      },
      eps);
  expect_mean_near(esm.per_sample, expected_esm, "ESM, exact Gaussian score");
  EXPECT_NEAR(esm.loss.item<double>(), esm.per_sample.mean().item<double>(), 1e-12);
  expect_mean_near(dsm.per_sample, expected_esm + 1.0, "DSM, exact Gaussian score");
  expect_mean_near(dsm.per_sample - esm.per_sample, 1.0, "DSM - ESM");
  // With an isotropic exact score the trace is -D / v for every sample.
  std::printf("[ esm   ] exact VP score: ESM %.5f (closed form %.5f), DSM - ESM %.5f (1)\n",
              esm.loss.item<double>(), expected_esm,
              (dsm.per_sample - esm.per_sample).mean().item<double>());
}

// For an arbitrary score network, E[DSM] - E[ESM] = K (Vincent 2011): D/2 for
// the 0.5-sum reduction, times E[g^2 / sigma^2] = 2 ln(sigma_max / sigma_min)
// under likelihood weighting on VE.
TEST(EsmLoss, DiffersFromDsmByVincentsConstantForAnyNetwork) {
  auto ve = std::make_shared<VESde>(0.1, 2.0, 1000);
  auto w = torch::tensor({{-1.0, 0.5, 0.0}, {0.2, -0.8, 0.3}, {-0.4, 0.1, -1.5}}, kF64);
  auto c = torch::tensor({0.3, -0.2, 0.1}, kF64);
  TanhNet net(w, c);
  auto mu = torch::tensor({1.0, -1.0, 0.5}, kF64);
  torch::manual_seed(8);
  const auto x = gaussian_data(100000, mu, 0.7);
  const double dim = 3.0;
  for (bool lw : {false, true}) {
    const auto opts = continuous(/*reduce_mean=*/false, 1e-5, lw);
    torch::manual_seed(9);
    auto esm = EsmLoss(ve, opts)(net, x);
    torch::manual_seed(9);
    auto dsm = DsmLoss(ve, opts)(net, x);
    const double k = dim / 2 * (lw ? 2.0 * std::log(2.0 / 0.1) : 1.0);
    expect_mean_near(dsm.per_sample - esm.per_sample, k,
                     std::string("DSM - ESM, likelihood_weighting=") + (lw ? "true" : "false"));
    std::printf("[ esm   ] tanh net, VE, lw=%d: DSM - ESM %.4f (K = %.4f)\n", lw,
                (dsm.per_sample - esm.per_sample).mean().item<double>(), k);
  }
}

// SSM estimates ESM without bias on the same draws, and its projection noise
// per sample falls as 1/sqrt(projections) (a non-symmetric Jacobian, so
// Rademacher projections are not exact).
TEST(EsmLoss, SlicedScoreMatchingConvergesToIt) {
  auto ve = std::make_shared<VESde>(0.1, 2.0, 1000);
  auto a = torch::tensor({{-1.0, 0.5, 0.0}, {0.2, -0.8, 0.3}, {-0.4, 0.1, -1.5}}, kF64);
  auto b = torch::tensor({0.3, -0.2, 0.1}, kF64);
  LinearNet net(a, b);
  auto mu = torch::tensor({1.0, -1.0, 0.5}, kF64);
  const double s = 0.7, eps = 1e-5;
  torch::manual_seed(11);
  const auto x = gaussian_data(20000, mu, s);
  const auto opts = continuous(/*reduce_mean=*/false, eps);
  torch::manual_seed(12);
  auto esm = EsmLoss(ve, opts)(net, x);
  // Closed form for the linear score (loss_test.cpp, SsmLoss linear case):
  // sigma^2 (tr A + 0.5 (tr(A^T A)(s^2 + sigma^2) + ||A mu + b||^2)).
  const double tr_a = a.trace().item<double>();
  const double tr_ata = a.pow(2).sum().item<double>();
  const double shift = (torch::matmul(a, mu) + b).pow(2).sum().item<double>();
  const double expected = average_over_t(
      [&](double t) {
        const double sigma = 0.1 * std::pow(20.0, t);
        return sigma * sigma * (tr_a + 0.5 * (tr_ata * (s * s + sigma * sigma) + shift));
      },
      eps);
  expect_mean_near(esm.per_sample, expected, "ESM, linear score");
  std::vector<double> rms;
  for (int64_t copies : {1, 8, 64}) {
    for (auto projection : {SsmProjection::kRademacher, SsmProjection::kGaussian}) {
      SsmLossOptions o;
      static_cast<ContinuousLossOptions&>(o) = opts;
      o.variance_reduced = true;
      o.projection = projection;
      o.num_projections = copies;
      torch::manual_seed(12);
      auto ssm = SsmLoss(ve, o)(net, x);
      ASSERT_TRUE(torch::equal(ssm.t, esm.t));
      const auto diff = ssm.per_sample - esm.per_sample;
      expect_mean_near(diff, 0.0, "SSM - ESM, copies " + std::to_string(copies));
      if (projection == SsmProjection::kRademacher)
        rms.push_back(diff.pow(2).mean().sqrt().item<double>());
    }
  }
  // 8 times the projections: the noise falls by sqrt(8).
  EXPECT_NEAR(rms[0] / rms[1], std::sqrt(8.0), 0.3);
  EXPECT_NEAR(rms[1] / rms[2], std::sqrt(8.0), 0.3);
  std::printf("[ esm   ] rms(SSM_vr - ESM) per sample, Rademacher: %.4f / %.4f / %.4f for "
              "1 / 8 / 64 projections\n",
              rms[0], rms[1], rms[2]);
}

// The per-sample loss equals sigma^2 (tr J + 0.5 ||s||^2) with the trace from
// central differences of the network at the input it was fed.
TEST(EsmLoss, TraceMatchesFiniteDifferences) {
  auto ve = std::make_shared<VESde>(0.1, 2.0, 1000);
  auto w = torch::tensor({{-1.0, 0.5, 0.7, 0.0},
                          {0.2, -0.8, 0.3, 0.4},
                          {-0.4, 0.1, -1.5, 0.2},
                          {0.6, 0.0, 0.3, -0.9}},
                         kF64);
  auto c = torch::tensor({0.3, -0.2, 0.1, 0.0}, kF64);
  TanhNet net(w, c);
  torch::manual_seed(21);
  const auto x = torch::randn({16, 4}, kF64);
  auto out = EsmLoss(ve, continuous(/*reduce_mean=*/false, 1e-5))(net, x);
  const auto x_t = net.last_input;
  ASSERT_EQ(x_t.sizes(), x.sizes());
  torch::NoGradGuard no_grad;
  auto score = [&](const torch::Tensor& in) { return torch::tanh(torch::matmul(in, w.t()) + c); };
  const double h = 1e-5;
  auto trace = torch::zeros({16}, kF64);
  for (int64_t d = 0; d < 4; ++d) {
    auto plus = x_t.clone(), minus = x_t.clone();
    plus.select(1, d) += h;
    minus.select(1, d) -= h;
    trace += (score(plus) - score(minus)).select(1, d) / (2 * h);
  }
  const auto sigma = 0.1 * torch::pow(20.0, out.t);
  const auto expected = sigma.pow(2) * (trace + 0.5 * score(x_t).pow(2).sum(1));
  EXPECT_LT((out.per_sample - expected).abs().max().item<double>(), 1e-8);
}

TEST(EsmLoss, GradientMatchesFiniteDifferences) {
  // The trace depends on the parameters only through the Jacobian, so its
  // gradient needs create_graph. Same draws (same seed) on each side.
  auto ve = std::make_shared<VESde>(0.1, 2.0, 100);
  auto w = torch::tensor({{-1.0, 0.5}, {0.2, -0.8}}, kF64);
  auto c = torch::tensor({0.3, -0.2}, kF64);
  EsmLoss loss(ve, continuous(/*reduce_mean=*/true, 1e-5));
  auto x = torch::randn({64, 2}, kF64);
  TanhNet net(w.clone(), c.clone());
  torch::manual_seed(77);
  loss(net, x).loss.backward();
  auto grad = net.w_.grad().clone();
  const double h = 1e-5;
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 2; ++j) {
      auto eval = [&](double delta) {
        auto wp = w.clone();
        wp[i][j] += delta;
        TanhNet shifted(wp, c.clone());
        torch::manual_seed(77);
        return loss(shifted, x).loss.item<double>();
      };
      const double fd = (eval(h) - eval(-h)) / (2.0 * h);
      EXPECT_NEAR(grad[i][j].item<double>(), fd, 1e-6 * (1.0 + std::abs(fd)));
    }
  }
  torch::NoGradGuard no_grad;
  auto out = loss(net, x);
  EXPECT_FALSE(out.loss.requires_grad());
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
}

TEST(EsmLoss, PassesLabelsAndRejectsHighDimensionalData) {
  auto vp = std::make_shared<VPSde>(kBeta0, kBeta1, 1000);
  testing::RecordingNet rec;
  auto labels = torch::arange(8, torch::kLong);
  EsmLoss loss(vp, continuous(true, 1e-5));
  loss(rec, torch::randn({8, 2}, kF64), labels);
  EXPECT_TRUE(torch::equal(rec.last_labels, labels));
  try {
    loss(rec, torch::randn({2, 3, 8, 8}, kF64));
    ADD_FAILURE() << "expected scorch::Error for D = 192";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("training.loss"), std::string::npos) << e.what();
  }
}

TEST(EsmLoss, MadeByTheFactoryForContinuousTraining) {
  const Config config =
      parse_config("{}", "test", {"training.loss=esm", "training.sde=subvpsde"});
  EXPECT_NE(dynamic_cast<EsmLoss*>(make_loss(config, make_sde(config)).get()), nullptr);
  try {
    parse_config("{}", "test", {"training.loss=esm", "training.continuous=false"});
    ADD_FAILURE() << "expected scorch::Error for esm with training.continuous=false";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("training.continuous"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace scorch
