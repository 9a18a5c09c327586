// EDM's losses (losses.h EdmLoss) with the exact denoiser of Gaussian data
// N(0, s^2 I) in D dimensions, D*(x; sigma) = s^2/(s^2+sigma^2) x. Then
//   E[||D*(y + sigma z; sigma) - y||^2 | sigma] = D sigma^2 s^2 / (s^2 + sigma^2),
// so E[l] = E_sigma[lambda(sigma) D sigma^2 s^2 / (s^2 + sigma^2)], integrated
// here numerically over each loss's sigma distribution; the Monte-Carlo mean
// must hit it within 4 standard errors. The reported t is the CDF of the sigma
// draw, so it must be uniform on [0, 1] (quartile counts).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <memory>

#include "core/config.h"
#include "losses/loss.h"
#include "losses/losses.h"
#include "nn/precond.h"
#include "testing/gaussian_precond_net.h"
#include "testing/sdes.h"

namespace scorch {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
constexpr double kPi = 3.14159265358979323846;

double simpson(const std::function<double(double)>& f, double a, double b, int n = 20000) {
  const double h = (b - a) / n;
  double acc = f(a) + f(b);
  for (int i = 1; i < n; ++i) acc += f(a + i * h) * (i % 2 ? 4.0 : 2.0);
  return acc * h / 3.0;
}

struct Case {
  LossName loss;
  Precond precond;
};

void check_expectation(const Case& c) {
  const double s = 1.0, sd = 0.5;  // s != sd so that the edm weight does not cancel
  const int64_t dim = 4, batch = 40000;
  EdmLossOptions lo;
  lo.kind = c.loss;
  lo.sigma_data = sd;
  PrecondOptions po;
  po.kind = c.precond;
  po.sigma_data = sd;
  auto net = make_precond_score_net(po, testing::make_test_sde(SdeKind::kVE),
                                    std::make_shared<testing::GaussianPrecondNet>(po, s));
  // E[l | sigma] for the weights of Table 1.
  const auto given_sigma = [&](double sigma) {
    const double lambda = c.loss == LossName::kEdm
                              ? (sigma * sigma + sd * sd) / (sigma * sigma * sd * sd)
                              : 1.0 / (sigma * sigma);
    return lambda * dim * sigma * sigma * s * s / (s * s + sigma * sigma);
  };
  double want = 0;
  if (c.loss == LossName::kEdm) {  // ln sigma = p_mean + p_std u, u ~ N(0, 1)
    want = simpson(
        [&](double u) {
          return std::exp(-0.5 * u * u) / std::sqrt(2 * kPi) *
                 given_sigma(std::exp(lo.p_mean + lo.p_std * u));
        },
        -10, 10);
  } else if (c.loss == LossName::kEdmVp) {  // t ~ U(eps_t, 1)
    want =
        simpson(
            [&](double t) {
              return given_sigma(std::sqrt(std::expm1(0.5 * lo.beta_d * t * t + lo.beta_min * t)));
            },
            lo.eps_t, 1.0) /
        (1.0 - lo.eps_t);
  } else {  // ln sigma ~ U(ln sigma_min, ln sigma_max)
    const double a = std::log(lo.sigma_min), b = std::log(lo.sigma_max);
    want = simpson([&](double l) { return given_sigma(std::exp(l)); }, a, b) / (b - a);
  }
  torch::manual_seed(11);
  const auto y = torch::randn({batch, dim}, kF64) * s;
  const EdmLoss loss(lo);
  const auto out = loss(*net, y);
  const double mean = out.per_sample.mean().item<double>();
  const double se = out.per_sample.std().item<double>() / std::sqrt(static_cast<double>(batch));
  EXPECT_NEAR(out.loss.item<double>(), mean, 1e-9 * std::abs(mean));
  EXPECT_NEAR(mean, want, 4 * se) << "loss " << static_cast<int>(c.loss) << " se " << se;
  EXPECT_LT(se, 0.01 * want);  // the check has teeth: 4 se < 4% of the mean
  QuartileStats q;
  q.add(out);
  for (int k = 0; k < 4; ++k)  // t ~ U(0, 1): binomial counts, sd ~ 87
    EXPECT_NEAR(static_cast<double>(q.count[k]), batch / 4.0, 500.0) << "quartile " << k;
  EXPECT_GE(out.t.min().item<double>(), 0.0);
  EXPECT_LE(out.t.max().item<double>(), 1.0);
}

TEST(EdmLoss, EdmExpectationMatchesClosedForm) {
  check_expectation({LossName::kEdm, Precond::kEDM});
}
TEST(EdmLoss, EdmVpExpectationMatchesClosedForm) {
  check_expectation({LossName::kEdmVp, Precond::kVP});
}
TEST(EdmLoss, EdmVeExpectationMatchesClosedForm) {
  check_expectation({LossName::kEdmVe, Precond::kVE});
}
// Any loss trains any preconditioner to the same optimum (the wrapper is D*).
TEST(EdmLoss, EdmLossOnVpPrecond) { check_expectation({LossName::kEdm, Precond::kVP}); }

TEST(EdmLoss, FactoryBuildsFromConfigKeys) {
  const Config c = parse_config(
      "", "x",
      {"model.precond=edm", "training.loss=edm", "training.p_mean=-1.0", "training.p_std=1.5"});
  auto loss = make_loss(c, testing::make_test_sde(SdeKind::kVP));
  EXPECT_NE(dynamic_cast<const EdmLoss*>(loss.get()), nullptr);
}

}  // namespace
}  // namespace scorch
