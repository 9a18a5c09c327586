// Sliced Wasserstein and MMD against closed forms.
#include "eval/sample_distance.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/compat.h"

namespace scorch {
namespace {

TEST(SlicedWasserstein, ShiftGivesMeanAbsoluteProjection) {
  // y = x + c: every projection's sorted values shift by <c, theta>, so
  // SW1 = E|<c, theta>| over uniform unit theta in 2-D = |c| * 2/pi.
  auto gen = compat::cpu_generator(1);
  auto x = compat::randn({500, 2}, gen, torch::kDouble);  // the identity holds for any set
  auto c = torch::tensor({3.0, 4.0}, torch::kDouble);
  const double sw = sliced_wasserstein(x, x + c, 20000, compat::cpu_generator(2));
  EXPECT_NEAR(sw, 5.0 * 2.0 / M_PI, 0.02);
}

TEST(SlicedWasserstein, ZeroForIdenticalAndSymmetric) {
  auto gen = compat::cpu_generator(3);
  auto x = compat::randn({500, 2}, gen), y = compat::randn({500, 2}, gen) * 2;
  EXPECT_EQ(sliced_wasserstein(x, x, 64, compat::cpu_generator(4)), 0.0);
  EXPECT_DOUBLE_EQ(sliced_wasserstein(x, y, 64, compat::cpu_generator(5)),
                   sliced_wasserstein(y, x, 64, compat::cpu_generator(5)));
}

TEST(SlicedWasserstein, ScaleOfGaussians) {
  // N(0, I) vs N(0, 4I): each projection is N(0,1) vs N(0,4); W1 between
  // N(0, a^2) and N(0, b^2) is |a - b| E|Z| = |a-b| sqrt(2/pi).
  auto gen = compat::cpu_generator(6);
  auto x = compat::randn({20000, 2}, gen, torch::kDouble);
  auto y = 2 * compat::randn({20000, 2}, gen, torch::kDouble);
  EXPECT_NEAR(sliced_wasserstein(x, y, 64, compat::cpu_generator(7)), std::sqrt(2 / M_PI), 0.02);
}

TEST(Mmd, GaussianClosedForm) {
  // For x ~ N(0, s^2 I_d), y ~ N(m, s^2 I_d) and a Gaussian kernel of width h:
  // E k(x, x') = (h^2/(h^2+2s^2))^(d/2); E k(x, y) = that * exp(-|m|^2/(2(h^2+2s^2))).
  const double s = 1, h = 1.5, d = 2;
  auto gen = compat::cpu_generator(8);
  auto x = compat::randn({3000, 2}, gen, torch::kDouble) * s;
  auto m = torch::tensor({1.0, 0.0}, torch::kDouble);
  auto y = compat::randn({3000, 2}, gen, torch::kDouble) * s + m;
  const double base = std::pow(h * h / (h * h + 2 * s * s), d / 2);
  const double expected = 2 * base - 2 * base * std::exp(-1.0 / (2 * (h * h + 2 * s * s)));
  EXPECT_NEAR(mmd2_unbiased(x, y, h), expected, 0.01);
  // Unbiased: near zero (either sign) for two draws of one law.
  auto z = compat::randn({3000, 2}, gen, torch::kDouble) * s;
  EXPECT_NEAR(mmd2_unbiased(x, z, h), 0.0, 0.005);
}

}  // namespace
}  // namespace scorch
