// Seeded 2-D toy distributions (Grathwohl et al. 2019, FFJORD toy data).
#include "data/toy2d.h"

#include <cmath>

#include "core/compat.h"
#include "core/error.h"

namespace scorch {

Toy2D toy2d_kind(DatasetName dataset) {
  switch (dataset) {
    case DatasetName::kSwissRoll:
      return Toy2D::kSwissRoll;
    case DatasetName::kTwoMoons:
      return Toy2D::kTwoMoons;
    case DatasetName::kEightGaussians:
      return Toy2D::kEightGaussians;
    case DatasetName::kCheckerboard:
      return Toy2D::kCheckerboard;
    default:
      fail(detail::concat("data.dataset '", dataset, "' is not a 2-D dataset; expected "
                          "swiss_roll, two_moons, eight_gaussians or checkerboard"));
  }
}

torch::Tensor sample_toy2d(Toy2D kind, int64_t n, at::Generator gen) {
  const double pi = M_PI;
  switch (kind) {
    case Toy2D::kSwissRoll: {
      auto t = 1.5 * pi * (1 + 2 * compat::rand({n}, gen));
      auto x = torch::stack({t * torch::cos(t), t * torch::sin(t)}, 1);
      return (x + compat::randn({n, 2}, gen)) / 5.0;
    }
    case Toy2D::kTwoMoons: {
      // make_moons: outer arc (cos a, sin a), inner arc (1 - cos a, 0.5 - sin a), a in [0, pi].
      auto a = pi * compat::rand({n}, gen);
      auto inner = compat::randint(0, 2, {n}, gen).to(torch::kBool);
      auto x = torch::where(inner, 1 - torch::cos(a), torch::cos(a));
      auto y = torch::where(inner, 0.5 - torch::sin(a), torch::sin(a));
      auto pts = torch::stack({x, y}, 1) + 0.1 * compat::randn({n, 2}, gen);
      return pts * 2 + torch::tensor({-1.0f, -0.2f});
    }
    case Toy2D::kEightGaussians: {
      const double r = 1 / std::sqrt(2.0);
      auto centers =
          torch::tensor({1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, -1.0, r, r, r, -r, -r, r, -r, -r},
                        torch::kFloat)
              .view({8, 2}) *
          4.0;
      auto idx = compat::randint(0, 8, {n}, gen);
      return (centers.index_select(0, idx) + 0.5 * compat::randn({n, 2}, gen)) / std::sqrt(2.0);
    }
    case Toy2D::kCheckerboard: {
      auto x1 = compat::rand({n}, gen) * 4 - 2;
      auto x2 = compat::rand({n}, gen) - compat::randint(0, 2, {n}, gen).to(torch::kFloat) * 2;
      x2 = x2 + torch::remainder(torch::floor(x1), 2);
      return torch::stack({x1, x2}, 1) * 2;
    }
  }
  TORCH_CHECK(false, "unknown Toy2D");
}

}  // namespace scorch
