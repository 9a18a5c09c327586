// BatchRandom: a share of the global batch gets exactly the rows of the whole
// batch's draw, whatever the split; draws differ from one another and from
// step to step.
#include <gtest/gtest.h>

#include "core/batch_random.h"

namespace scorch {
namespace {

TEST(BatchRandom, SharesAreSlicesOfTheGlobalDraw) {
  const int64_t rows = 12;
  BatchRandom whole(7, 3, rows, 0, rows);
  const auto u = whole.uniform({rows}, torch::kFloat);
  const auto z = whole.normal({rows, 2, 3}, torch::kFloat);
  const auto k = whole.randint(10, {rows}, torch::kLong);
  for (int64_t parts : {2, 3, 4, 6}) {
    const int64_t n = rows / parts;
    for (int64_t p = 0; p < parts; ++p) {
      BatchRandom share(7, 3, rows, p * n, n);
      EXPECT_TRUE(torch::equal(share.uniform({n}, torch::kFloat), u.narrow(0, p * n, n)));
      EXPECT_TRUE(torch::equal(share.normal({n, 2, 3}, torch::kFloat), z.narrow(0, p * n, n)));
      EXPECT_TRUE(torch::equal(share.randint(10, {n}, torch::kLong), k.narrow(0, p * n, n)));
    }
  }
}

TEST(BatchRandom, DrawsAndStepsAreIndependentStreams) {
  BatchRandom a(7, 3, 1000, 0, 1000);
  const auto first = a.normal({1000}, torch::kDouble);
  const auto second = a.normal({1000}, torch::kDouble);
  BatchRandom b(7, 4, 1000, 0, 1000);
  const auto next_step = b.normal({1000}, torch::kDouble);
  // Independent N(0, 1) samples: correlations within 5 / sqrt(n).
  auto corr = [](const torch::Tensor& x, const torch::Tensor& y) {
    return ((x * y).mean() / (x.std() * y.std())).item<double>();
  };
  EXPECT_LT(std::abs(corr(first, second)), 5 / std::sqrt(1000.0));
  EXPECT_LT(std::abs(corr(first, next_step)), 5 / std::sqrt(1000.0));
  EXPECT_NEAR(first.mean().item<double>(), 0, 5 / std::sqrt(1000.0));
  EXPECT_NEAR(first.std().item<double>(), 1, 0.1);
}

TEST(BatchRandom, DefaultDrawsComeFromTheDefaultGenerator) {
  BatchRandom r;
  torch::manual_seed(5);
  const auto a = r.normal({4}, torch::kFloat);
  torch::manual_seed(5);
  EXPECT_TRUE(torch::equal(a, torch::randn({4})));
}

TEST(BatchRandom, AShareOutsideTheBatchOrAWrongShapeIsRejected) {
  EXPECT_THROW(BatchRandom(1, 0, 8, 6, 4), c10::Error);
  BatchRandom r(1, 0, 8, 0, 4);
  EXPECT_THROW(r.normal({5}, torch::kFloat), c10::Error);
}

}  // namespace
}  // namespace scorch
