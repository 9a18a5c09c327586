// Tests of the discrete noise schedules against their closed forms (Ho et al.
// 2020; Nichol and Dhariwal 2021, eq. 17; Song and Ermon 2019).
#include "sde/schedules.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace scorch {
namespace {

double at(const torch::Tensor& v, int64_t i) { return v[i].item<double>(); }

TEST(Schedules, LinearBetas) {
  auto b = linear_beta_schedule(1000);
  EXPECT_EQ(b.scalar_type(), torch::kFloat64);
  ASSERT_EQ(b.numel(), 1000);
  EXPECT_DOUBLE_EQ(at(b, 0), 1e-4);
  EXPECT_NEAR(at(b, 999), 0.02, 1e-15);
  EXPECT_NEAR(at(b, 500), 1e-4 + (0.02 - 1e-4) * 500.0 / 999.0, 1e-15);
}

// alpha_bar(k) = f(k) / f(0), f(k) = cos^2(((k/n + s) / (1 + s)) pi / 2).
double cosine_alpha_bar(double k, int64_t n, double s) {
  auto f = [&](double u) {
    const double c = std::cos((u / n + s) / (1.0 + s) * std::acos(-1.0) / 2.0);
    return c * c;
  };
  return f(k) / f(0.0);
}

TEST(Schedules, CosineAlphaBarMatchesNicholDhariwal) {
  const int64_t n = 1000;
  auto betas = cosine_beta_schedule(n);
  ASSERT_EQ(betas.numel(), n);
  EXPECT_EQ(betas.scalar_type(), torch::kFloat64);
  auto abar = torch::cumprod(1.0 - betas, 0);
  // Unclipped steps reproduce alpha_bar exactly (the product telescopes).
  for (int64_t k : {0, 1, 10, 250, 500, 900, 990}) {
    ASSERT_LT(at(betas, k), 0.999);
    EXPECT_NEAR(at(abar, k), cosine_alpha_bar(k + 1, n, 0.008), 1e-10) << "k=" << k;
  }
  // beta_k are increasing and the last one is clipped: alpha_bar(n) = cos^2(pi/2) ~ 0.
  EXPECT_DOUBLE_EQ(at(betas, n - 1), 0.999);
  EXPECT_GT(at(betas, 1), at(betas, 0));
}

TEST(Schedules, CosineMaxBetaClip) {
  auto betas = cosine_beta_schedule(100, 0.008, 0.1);
  EXPECT_LE(betas.max().item<double>(), 0.1);
  EXPECT_DOUBLE_EQ(at(betas, 99), 0.1);
  // The early, small betas are untouched.
  EXPECT_NEAR(at(betas, 0), 1.0 - cosine_alpha_bar(1, 100, 0.008), 1e-12);
}

TEST(Schedules, GeometricSigmas) {
  auto s = geometric_sigma_schedule(10, 0.01, 50.0);
  EXPECT_EQ(s.scalar_type(), torch::kFloat64);
  EXPECT_NEAR(at(s, 0), 0.01, 1e-15);
  EXPECT_NEAR(at(s, 9), 50.0, 1e-12);
  const double ratio = std::pow(5000.0, 1.0 / 9.0);
  for (int64_t k = 1; k < 10; ++k) EXPECT_NEAR(at(s, k) / at(s, k - 1), ratio, 1e-12);
}

}  // namespace
}  // namespace scorch
