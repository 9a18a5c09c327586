// EDM preconditioning (nn/precond.h): Table 1's coefficients against their
// closed forms, and the score of a wrapped exact Gaussian denoiser against the
// analytic score of the Gaussian marginals of every continuous SDE.
#include "nn/precond.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <vector>

#include "nn/score_model.h"
#include "testing/gaussian_precond_net.h"
#include "testing/sdes.h"

namespace scorch {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
const std::vector<double> kSigmas = {0.002, 0.1, 0.5, 1.0, 3.7, 80.0};

void expect_coefficients(const PrecondOptions& o, double c_skip, double c_out, double c_in,
                         double c_noise, double sigma) {
  const auto c = precond_coefficients(o, torch::tensor({sigma}, kF64));
  EXPECT_NEAR(c.c_skip.item<double>(), c_skip, 1e-12 * std::abs(c_skip)) << sigma;
  EXPECT_NEAR(c.c_out.item<double>(), c_out, 1e-12 * std::abs(c_out)) << sigma;
  EXPECT_NEAR(c.c_in.item<double>(), c_in, 1e-12 * std::abs(c_in)) << sigma;
  EXPECT_NEAR(c.c_noise.item<double>(), c_noise, 1e-12 * std::abs(c_noise) + 1e-12) << sigma;
}

TEST(Precond, EdmCoefficients) {
  PrecondOptions o;
  o.kind = Precond::kEDM;
  o.sigma_data = 0.5;
  for (double s : kSigmas) {
    const double r = std::sqrt(s * s + 0.25);
    expect_coefficients(o, 0.25 / (s * s + 0.25), 0.5 * s / r, 1.0 / r, std::log(s) / 4.0, s);
  }
  // At sigma = sd: c_skip = 1/2, c_out = c_in sd = 1/sqrt(2).
  o.sigma_data = 1.3;
  expect_coefficients(o, 0.5, 1.3 / std::sqrt(2.0), 1.0 / (1.3 * std::sqrt(2.0)),
                      std::log(1.3) / 4.0, 1.3);
}

TEST(Precond, VeCoefficients) {
  PrecondOptions o;
  o.kind = Precond::kVE;
  for (double s : kSigmas) expect_coefficients(o, 1.0, s, 1.0, std::log(0.5 * s), s);
}

TEST(Precond, VpCoefficients) {
  PrecondOptions o;
  o.kind = Precond::kVP;  // beta_min 0.1, beta_d 19.9, M 1000 (EDM's VPPrecond)
  for (double t : {1e-5, 1e-3, 0.1, 0.5, 1.0}) {
    // sigma(t) of EDM's VP (its Table 1), so that c_noise = 999 t exactly.
    const double s = std::sqrt(std::exp(0.5 * 19.9 * t * t + 0.1 * t) - 1.0);
    expect_coefficients(o, 1.0, -s, 1.0 / std::sqrt(s * s + 1.0), 999.0 * t, s);
  }
}

// Score of the wrapper = analytic score -x / (m^2 s^2 + std^2) of N(0, s^2 I) data
// under each SDE, for each preconditioner (the VP conversion goes through x / m).
TEST(Precond, ScoreOfWrappedGaussianDenoiserIsTheAnalyticScore) {
  const double s = 0.8;
  torch::manual_seed(3);
  const auto x = torch::randn({6, 3}, kF64) * 2.0;
  const auto t = torch::tensor({1e-3, 0.02, 0.2, 0.5, 0.8, 1.0}, kF64);
  for (auto kind : {Precond::kVP, Precond::kVE, Precond::kEDM}) {
    for (auto sde_kind : {SdeKind::kVE, SdeKind::kVP, SdeKind::kSubVP}) {
      PrecondOptions o;
      o.kind = kind;
      o.beta_d = 19.9;
      auto sde = testing::make_test_sde(sde_kind);
      auto net =
          make_precond_score_net(o, sde, std::make_shared<testing::GaussianPrecondNet>(o, s));
      const auto got = score_fn(*net, *sde, /*continuous=*/true, x, t);
      const auto mp = sde->marginal_prob(torch::ones({6, 1}, kF64), t);
      const auto var = mp.mean * mp.mean * s * s + (mp.std * mp.std).view({-1, 1});
      const auto want = -x / var;
      EXPECT_TRUE(torch::allclose(got, want, 1e-8, 1e-10))
          << "precond " << static_cast<int>(kind) << " sde " << testing::sde_label(sde_kind) << "\n"
          << got << "\n"
          << want;
    }
  }
}

// The denoiser itself at sigma [B] (per-sample sigmas): D* = s^2/(s^2+sigma^2) x.
TEST(Precond, DenoiseOfWrappedGaussianNetIsTweedie) {
  PrecondOptions o;
  auto sde = testing::make_test_sde(SdeKind::kVE);
  auto net = make_precond_score_net(o, sde, std::make_shared<testing::GaussianPrecondNet>(o, 0.5));
  const auto x = torch::randn({3, 2}, kF64);
  const auto sigma = torch::tensor({0.01, 1.0, 40.0}, kF64);
  const auto d = net->denoise(x, sigma);
  EXPECT_TRUE(torch::allclose(d, 0.25 / (0.25 + sigma * sigma).view({-1, 1}) * x, 1e-10, 1e-12));
}

}  // namespace
}  // namespace scorch
