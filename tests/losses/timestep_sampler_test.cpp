// The loss-second-moment level resampler (losses/timestep_sampler.h) against
// hand-computed weights, the unbiasedness of the 1/(N p) weighting (enumerated
// and through DdpmLoss with a closed-form per-level loss), and the warm-up.
#include "losses/timestep_sampler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "losses/losses.h"
#include "testing/recording_net.h"

namespace scorch {
namespace {

constexpr auto kF64 = torch::kFloat64;

// Feeds `losses[k]` (each in order) to level k.
void feed(TimestepSampler& s, const std::vector<std::vector<double>>& losses) {
  std::vector<double> levels, values;
  for (size_t k = 0; k < losses.size(); ++k)
    for (double l : losses[k]) levels.push_back(static_cast<double>(k)), values.push_back(l);
  s.update(torch::tensor(levels, kF64), torch::tensor(values, kF64));
}

TEST(TimestepSampler, WeightsMatchHandComputedSecondMoments) {
  // H = 2, u = 0.1: sqrt(mean l^2) = sqrt((1 + 49) / 2) = 5, sqrt((4 + 4) / 2) = 2,
  // sqrt((9 + 9) / 2) = 3; sum 10; p = 0.9 [0.5, 0.2, 0.3] + 0.1 / 3.
  TimestepSampler s(3, /*history_per_level=*/2, /*uniform_prob=*/0.1);
  feed(s, {{1, 7}, {2, 2}, {3, 3}});
  ASSERT_TRUE(s.warmed_up());
  auto p = s.probabilities();
  EXPECT_NEAR(p[0].item<double>(), 0.45 + 0.1 / 3, 1e-12);
  EXPECT_NEAR(p[1].item<double>(), 0.18 + 0.1 / 3, 1e-12);
  EXPECT_NEAR(p[2].item<double>(), 0.27 + 0.1 / 3, 1e-12);
  // A third loss at level 1 shifts out the oldest: history [2, 5], sqrt(14.5).
  feed(s, {{}, {5}, {}});
  const double m1 = std::sqrt(14.5), total = 5 + m1 + 3;
  p = s.probabilities();
  EXPECT_NEAR(p[0].item<double>(), 0.9 * 5 / total + 0.1 / 3, 1e-12);
  EXPECT_NEAR(p[1].item<double>(), 0.9 * m1 / total + 0.1 / 3, 1e-12);
  EXPECT_NEAR(p[2].item<double>(), 0.9 * 3 / total + 0.1 / 3, 1e-12);
}

TEST(TimestepSampler, UniformUntilEveryLevelHasItsHistory) {
  TimestepSampler s(4, /*history_per_level=*/3);
  EXPECT_FALSE(s.warmed_up());
  feed(s, {{9, 9, 9, 9, 9}, {1, 1, 1}, {5, 5, 5}, {2, 2}});  // level 3 one short
  EXPECT_FALSE(s.warmed_up());
  EXPECT_TRUE(torch::equal(s.probabilities(), torch::full({4}, 0.25, kF64)));
  BatchRandom rng(7, 0, 1000, 0, 1000);
  auto [levels, weights] = s.sample(rng, 1000, torch::TensorOptions().dtype(kF64));
  EXPECT_TRUE(torch::equal(weights, torch::ones({1000}, kF64)));  // 1 / (4 * 0.25)
  feed(s, {{}, {}, {}, {2}});
  EXPECT_TRUE(s.warmed_up());
  EXPECT_FALSE(torch::allclose(s.probabilities(), torch::full({4}, 0.25, kF64)));
}

TEST(TimestepSampler, DrawsInvertTheCdfAndWeightByInverseProbability) {
  // Losses 1..4 at levels 0..3: p = 0.999 [0.1, 0.2, 0.3, 0.4] + 0.00025.
  TimestepSampler s(4, /*history_per_level=*/10);
  std::vector<std::vector<double>> h(4);
  for (int k = 0; k < 4; ++k) h[k].assign(10, k + 1.0);
  feed(s, h);
  const double p[4] = {0.0999 + 0.00025, 0.1998 + 0.00025, 0.2997 + 0.00025, 0.3996 + 0.00025};
  const int64_t n = 200000;
  BatchRandom rng(11, 3, n, 0, n), twin(11, 3, n, 0, n);
  auto [levels, weights] = s.sample(rng, n, torch::TensorOptions().dtype(kF64));
  const auto u = twin.uniform({n}, torch::TensorOptions().dtype(kF64));
  const double cdf[4] = {p[0], p[0] + p[1], p[0] + p[1] + p[2], 1.0};
  auto lv = levels.accessor<int64_t, 1>();
  auto wv = weights.accessor<double, 1>();
  auto uv = u.accessor<double, 1>();
  int64_t count[4] = {0, 0, 0, 0};
  double seen_weight[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) {
    int expected = 0;
    while (expected < 3 && uv[i] >= cdf[expected]) ++expected;
    ASSERT_EQ(lv[i], expected) << "u = " << uv[i];
    ASSERT_NEAR(wv[i], 1.0 / (4 * p[expected]), 1e-12);
    count[expected] += 1;
    seen_weight[expected] = wv[i];
  }
  for (int k = 0; k < 4; ++k) {
    const double sd = std::sqrt(p[k] * (1 - p[k]) / n);
    EXPECT_NEAR(count[k] / static_cast<double>(n), p[k], 5 * sd) << "level " << k;
  }
  // Enumerated expectation: sum_k p_k w_k l_k = mean_k l_k for any losses l.
  const double l[4] = {0.3, 7.0, 1.5, 2.25};
  double weighted = 0;
  for (int k = 0; k < 4; ++k) weighted += p[k] * seen_weight[k] * l[k];
  EXPECT_NEAR(weighted, (0.3 + 7.0 + 1.5 + 2.25) / 4, 1e-12);
}

TEST(TimestepSampler, DdpmLossWithImportanceWeightsEstimatesTheUniformObjective) {
  // Net 2x + 1 at x = 0: out = 2 s_k z + 1 with s_k = sqrt(1 - abar_k), so
  // E_z[(out - z)^2] = (2 s_k - 1)^2 + 1 =: l_k, and the uniform objective is mean_k l_k.
  const int64_t levels = 4;
  auto vp = std::make_shared<const VPSde>(0.1, 2.0, levels);  // betas 0.025 .. 0.5
  auto s = std::make_shared<TimestepSampler>(levels, 10);
  std::vector<std::vector<double>> h(levels);
  for (int k = 0; k < levels; ++k) h[k].assign(10, k == 1 ? 10.0 : 1.0);  // p_1 = 10/13 + ...
  feed(*s, h);
  const auto abar = vp->alphas_cumprod().to(kF64);
  const auto p = s->probabilities();
  double uniform = 0, biased = 0;
  for (int k = 0; k < levels; ++k) {
    const double sk = std::sqrt(1 - abar[k].item<double>());
    const double lk = (2 * sk - 1) * (2 * sk - 1) + 1;
    uniform += lk / levels;
    biased += p[k].item<double>() * lk;
  }
  testing::RecordingNet net;
  const int64_t n = 1000000;
  BatchRandom rng(5, 0, n, 0, n);
  auto out = DdpmLoss(vp, /*reduce_mean=*/true, s)(net, torch::zeros({n, 1}, kF64), {}, &rng);
  ASSERT_EQ(out.level.numel(), n);
  // Standard error of the weighted mean, from the sample itself.
  const auto w = 1.0 / (levels * p.index_select(0, out.level));
  const double se = (out.per_sample * w).std().item<double>() / std::sqrt(static_cast<double>(n));
  ASSERT_GT(std::abs(biased - uniform), 20 * se);  // unweighted draws would be far off
  EXPECT_NEAR(out.loss.item<double>(), uniform, 5 * se);
  EXPECT_NEAR(out.per_sample.mean().item<double>(), biased, 5 * se);  // per_sample is unweighted
}

TEST(TimestepSampler, StateRoundTripsAndRejectsAnotherLevelCount) {
  TimestepSampler a(3, 2, 0.1), b(3, 2, 0.1), other(5, 2, 0.1);
  feed(a, {{1, 7}, {2, 2}, {3}});
  b.load_state(a.state(), "test");
  feed(a, {{}, {}, {4}});
  feed(b, {{}, {}, {4}});
  EXPECT_TRUE(torch::equal(a.probabilities(), b.probabilities()));
  EXPECT_TRUE(b.warmed_up());
  EXPECT_THROW(other.load_state(a.state(), "test"), Error);
}

TEST(TimestepSampler, OnlyDiscreteLossesTakeOne) {
  EXPECT_THROW(parse_config("{}", "test", {"training.timestep_sampler=loss_second_moment"}),
               Error);  // continuous time: no levels to sample
  const Config config =
      parse_config("{}", "test", {"training.timestep_sampler=loss_second_moment",
                                  "training.continuous=false", "model.num_scales=100"});
  auto vp = make_sde(config);
  auto s = make_timestep_sampler(config, *vp);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->num_levels(), 100);
  EXPECT_NE(dynamic_cast<DdpmLoss*>(make_loss(config, vp, s).get()), nullptr);
  Config uniform = config;
  uniform.training.timestep_sampler = TimestepSamplerName::kUniform;
  EXPECT_EQ(make_timestep_sampler(uniform, *vp), nullptr);
}

}  // namespace
}  // namespace scorch
