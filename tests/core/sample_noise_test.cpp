// Per-sample noise: a sample's noise depends on its index only, not on how
// the samples are batched; outside a scope the draws are LibTorch's default
// generator's; the draws are standard normal.
#include <gtest/gtest.h>

#include "core/compat.h"
#include "core/rng.h"
#include "core/sample_noise.h"

namespace scorch {
namespace {

TEST(SampleNoise, RowsDependOnTheSampleIndexNotTheBatching) {
  torch::Tensor whole, first, second;
  {
    PerSampleNoise scope(7, 0, 10);
    whole = torch::cat({sample_randn({10, 3, 4}, {}).reshape({10, -1}),
                        sample_randn_like(torch::zeros({10, 5}))}, 1);  // two draws per sample
  }
  {
    PerSampleNoise scope(7, 0, 4);
    first = torch::cat({sample_randn({4, 3, 4}, {}).reshape({4, -1}),
                        sample_randn_like(torch::zeros({4, 5}))}, 1);
  }
  {
    PerSampleNoise scope(7, 4, 6);
    second = torch::cat({sample_randn({6, 3, 4}, {}).reshape({6, -1}),
                         sample_randn_like(torch::zeros({6, 5}))}, 1);
  }
  EXPECT_TRUE(torch::equal(whole, torch::cat({first, second})));
  // Distinct samples and distinct seeds draw distinct noise.
  EXPECT_FALSE(torch::equal(whole[0], whole[1]));
  PerSampleNoise other(8, 0, 10);
  EXPECT_FALSE(torch::equal(sample_randn({10, 12}, {}), whole.narrow(1, 0, 12)));
}

// Row i is randn(row shape) of a CPU generator seeded with
// derive_seed(seed, 0x5E1D, first + i), as the row-by-row draw made it before
// rows were filled in place and in parallel: the same values, short rows (the
// scalar path) and long ones (the vectorised path) alike.
TEST(SampleNoise, ParallelInPlaceRowsEqualTheRowByRowDraw) {
  torch::set_num_threads(2);
  for (const std::vector<int64_t> row : {std::vector<int64_t>{3}, std::vector<int64_t>{3, 8, 8}}) {
    std::vector<int64_t> shape{9};
    shape.insert(shape.end(), row.begin(), row.end());
    PerSampleNoise scope(21, 40, 9);
    const auto drawn = sample_randn(shape, {});
    for (int64_t i = 0; i < 9; ++i) {
      auto g = compat::cpu_generator(derive_seed(21, 0x5E1D, static_cast<uint64_t>(40 + i)));
      EXPECT_TRUE(torch::equal(drawn[i], compat::randn(row, g, torch::kFloat))) << "row " << i;
    }
  }
}

TEST(SampleNoise, OutsideAScopeDrawsFromTheDefaultGenerator) {
  torch::manual_seed(3);
  const auto expected = torch::randn({5, 6});
  torch::manual_seed(3);
  EXPECT_TRUE(torch::equal(sample_randn({5, 6}, {}), expected));
  torch::manual_seed(3);
  EXPECT_TRUE(torch::equal(sample_randn_like(torch::zeros({5, 6})), expected));
}

TEST(SampleNoise, DrawsAreStandardNormalInTheRequestedDtype) {
  PerSampleNoise scope(11, 100, 400);
  const auto z = sample_randn({400, 250}, torch::TensorOptions().dtype(torch::kDouble));
  EXPECT_EQ(z.scalar_type(), torch::kDouble);
  const int64_t n = z.numel();  // 100,000 draws: mean and variance within 5 standard errors
  EXPECT_NEAR(z.mean().item<double>(), 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(z.var().item<double>(), 1.0, 5.0 * std::sqrt(2.0 / n));
  // Rows are uncorrelated with each other: correlation of neighbouring rows.
  const auto a = z.narrow(0, 0, 399).reshape({-1}), b = z.narrow(0, 1, 399).reshape({-1});
  const double corr = ((a * b).mean() / (a.std() * b.std())).item<double>();
  EXPECT_NEAR(corr, 0.0, 5.0 / std::sqrt(a.numel()));
}

TEST(SampleNoise, AScopeChecksTheBatchSize) {
  PerSampleNoise scope(1, 0, 4);
  EXPECT_THROW(sample_randn({5, 2}, {}), c10::Error);
  EXPECT_THROW(PerSampleNoise(1, 0, 4), c10::Error);  // scopes do not nest
}

}  // namespace
}  // namespace scorch
