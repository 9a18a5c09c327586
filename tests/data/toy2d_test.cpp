// Toy 2-D datasets: seeded reproducibility and the moments of each law.
#include "data/toy2d.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/compat.h"
#include "core/config.h"
#include "core/error.h"
#include "data/source.h"

namespace scorch {
namespace {

TEST(Toy2D, SameSeedSamePoints) {
  for (auto kind :
       {Toy2D::kSwissRoll, Toy2D::kTwoMoons, Toy2D::kEightGaussians, Toy2D::kCheckerboard}) {
    auto a = sample_toy2d(kind, 100, compat::cpu_generator(5));
    auto b = sample_toy2d(kind, 100, compat::cpu_generator(5));
    auto c = sample_toy2d(kind, 100, compat::cpu_generator(6));
    EXPECT_TRUE(torch::equal(a, b));
    EXPECT_FALSE(torch::equal(a, c));
    EXPECT_EQ(a.sizes(), (std::vector<int64_t>{100, 2}));
  }
}

TEST(Toy2D, EightGaussiansMoments) {
  // Centres 4 u_k / sqrt(2) on a circle of radius 2 sqrt(2); each coordinate has
  // variance (16 * 1/2 + 0.25) / 2 = 4.125 and mean 0.
  auto x =
      sample_toy2d(Toy2D::kEightGaussians, 200000, compat::cpu_generator(1)).to(torch::kDouble);
  EXPECT_NEAR(x.mean(0)[0].item<double>(), 0, 0.02);
  EXPECT_NEAR(x.mean(0)[1].item<double>(), 0, 0.02);
  EXPECT_NEAR(x.var(0)[0].item<double>(), 4.125, 0.05);
  EXPECT_NEAR(x.var(0)[1].item<double>(), 4.125, 0.05);
}

TEST(Toy2D, CheckerboardOccupiesDarkCells) {
  auto x = sample_toy2d(Toy2D::kCheckerboard, 10000, compat::cpu_generator(2));
  auto cell = torch::floor(x / 2);  // cells of side 2 over [-4, 4]^2
  auto parity = torch::remainder(cell.select(1, 0) + cell.select(1, 1), 2);
  EXPECT_TRUE(torch::all(parity == 0).item<bool>());
  EXPECT_LE(x.abs().max().item<float>(), 4.0f);
}

TEST(Toy2D, TwoMoonsAndSwissRollRanges) {
  auto m = sample_toy2d(Toy2D::kTwoMoons, 20000, compat::cpu_generator(3)).to(torch::kDouble);
  // make_moons x-range [-1, 2], *2 - 1 -> [-3, 3]; mean x of both arcs is 0.5 -> 0.
  EXPECT_NEAR(m.mean(0)[0].item<double>(), 0.0, 0.03);
  EXPECT_NEAR(m.mean(0)[1].item<double>(), 2 * 0.25 - 0.2, 0.03);
  auto s = sample_toy2d(Toy2D::kSwissRoll, 20000, compat::cpu_generator(4));
  EXPECT_LT(s.abs().max().item<float>(), 4.0f);
}

TEST(DataSource, CursorResumesTheSameStream) {
  Config c;
  auto a = make_data_source(c);
  a->next(64);
  auto second = a->next(64).x;
  auto b = make_data_source(c);
  b->seek(64);
  EXPECT_TRUE(torch::equal(b->next(64).x, second));
  EXPECT_EQ(b->cursor(), 128);
}

TEST(DataSource, UnknownImageDatasetIsAnError) {
  Config c;
  c.data.dataset = DatasetName::kHdf5;
  c.model.name = ModelName::kDdpm;
  EXPECT_THROW(make_data_source(c), Error);
  EXPECT_THROW(toy2d_kind(DatasetName::kSyntheticImages), Error);
  EXPECT_THROW(parse_config("{}", "test", {"data.dataset=spiral"}), Error);
}

}  // namespace
}  // namespace scorch
