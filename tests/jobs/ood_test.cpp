// OOD scoring: AUROC against its closed forms, and the denoising score of an
// exact (analytic) model ranks in-distribution data below shifted data.
#include <gtest/gtest.h>

#include "core/config.h"
#include "jobs/ood.h"
#include "nn/analytic.h"

namespace scorch {
namespace {

TEST(Auroc, HandComputedCasesAndTies) {
  EXPECT_DOUBLE_EQ(auroc(torch::tensor({1.0, 2.0}), torch::tensor({3.0, 4.0})), 1.0);
  EXPECT_DOUBLE_EQ(auroc(torch::tensor({3.0, 4.0}), torch::tensor({1.0, 2.0})), 0.0);
  // Pairs (in, out): (1,2) yes, (3,2) no -> 1/2.
  EXPECT_DOUBLE_EQ(auroc(torch::tensor({1.0, 3.0}), torch::tensor({2.0})), 0.5);
  // A tie counts half: pairs (1,1) 0.5, (2,1) 0 -> 0.25.
  EXPECT_DOUBLE_EQ(auroc(torch::tensor({1.0, 2.0}), torch::tensor({1.0})), 0.25);
}

TEST(Auroc, GaussianShiftMatchesTheClosedForm) {
  // Scores N(0,1) vs N(d,1): AUROC = Phi(d / sqrt 2).
  torch::manual_seed(0);
  const double d = 1.0;
  auto in = torch::randn({20000}, torch::kDouble), out = torch::randn({20000}, torch::kDouble) + d;
  const double expected = 0.5 * std::erfc(-d / 2.0);  // Phi(d / sqrt 2)
  EXPECT_NEAR(auroc(in, out), expected, 0.01);
}

TEST(DenoisingScore, ExactModelRanksShiftedDataHigher) {
  Config c;
  c.model.name = ModelName::kAnalytic;
  c.training.sde = SdeKind::kVP;
  auto sde = make_sde(c);
  auto net = make_analytic_from_config(c, sde);  // N(0, 0.5^2 I) in 2-D
  torch::manual_seed(1);
  auto in = 0.5 * torch::randn({400, 2});
  auto out = 0.5 * torch::randn({400, 2}) + torch::tensor({2.5f, 0.0f});
  auto s_in = denoising_score(c, sde, *net, in, 8, 3);
  auto s_out = denoising_score(c, sde, *net, out, 8, 3);
  EXPECT_EQ(s_in.sizes(), (std::vector<int64_t>{400}));
  EXPECT_GT(auroc(s_in, s_out), 0.9);
  // Seeded draws: the same batch scores the same again, another seed differently.
  EXPECT_TRUE(torch::equal(denoising_score(c, sde, *net, in, 8, 3), s_in));
  EXPECT_FALSE(torch::equal(denoising_score(c, sde, *net, in, 8, 4), s_in));
}

}  // namespace
}  // namespace scorch
