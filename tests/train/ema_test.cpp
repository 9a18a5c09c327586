// Ema: score_sde's warm-up decay and EDM's half-life beta against values
// computed by hand, several rates side by side, swapping EMA weights in and
// out, and the state round trip.
#include "train/ema.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/error.h"
#include "testing/local_comm.h"

namespace scorch {
namespace {

// A model with one trainable vector "w", one trainable scalar "b" and a
// frozen "fourier" (like score_sde's Gaussian Fourier W).
struct Toy : torch::nn::Module {
  explicit Toy(torch::Dtype dtype = torch::kFloat32) {
    w = register_parameter("w", torch::zeros({2}, dtype));
    b = register_parameter("b", torch::zeros({}, dtype));
    fourier = register_parameter("fourier", torch::ones({3}, dtype), /*requires_grad=*/false);
  }
  void set(float w0, float w1, float bv) {
    torch::NoGradGuard no_grad;
    w[0].fill_(w0);
    w[1].fill_(w1);
    b.fill_(bv);
  }
  torch::Tensor w, b, fourier;
};

ModelConfig ema_config(double rate, std::vector<double> extra = {}, double halflife_kimg = 0,
                       double rampup = 0.05) {
  ModelConfig c;
  c.ema_rate = rate;
  c.ema_extra_rates = std::move(extra);
  c.ema_halflife_kimg = halflife_kimg;
  c.ema_rampup_ratio = rampup;
  return c;
}

TEST(Ema, WarmupDecayClosedForm) {
  // n is incremented before use, so the first update has decay 2/11.
  EXPECT_DOUBLE_EQ(Ema::warmup_decay(0.9999, 1), 2.0 / 11.0);
  EXPECT_DOUBLE_EQ(Ema::warmup_decay(0.9999, 2), 3.0 / 12.0);
  EXPECT_DOUBLE_EQ(Ema::warmup_decay(0.9999, 1000000), 0.9999);
  EXPECT_DOUBLE_EQ(Ema::warmup_decay(0.5, 8), 0.5);  // (1+8)/(10+8) = 0.5
  EXPECT_DOUBLE_EQ(Ema::warmup_decay(0.5, 100), 0.5);
}

TEST(Ema, WarmupUpdatesByHand) {
  Toy model;
  model.set(0, 0, 0);
  Ema ema(model, ema_config(0.9999));
  ASSERT_EQ(ema.names(), std::vector<std::string>{"0.9999"});
  // s1 = 0 − (1 − 2/11)(0 − 11) = 9.
  model.set(11, -11, 22);
  ema.update(model, 128, 0);
  auto s = ema.shadow("0.9999");
  EXPECT_NEAR(s.at("w")[0].item<float>(), 9.0, 1e-5);
  EXPECT_NEAR(s.at("w")[1].item<float>(), -9.0, 1e-5);
  EXPECT_NEAR(s.at("b").item<float>(), 18.0, 1e-5);
  // s2 = 9 − (1 − 3/12)(9 − 20) = 17.25.
  model.set(20, 0, 0);
  ema.update(model, 128, 128);
  s = ema.shadow("0.9999");
  EXPECT_NEAR(s.at("w")[0].item<float>(), 17.25, 1e-5);
  EXPECT_NEAR(s.at("w")[1].item<float>(), -9.0 + 0.75 * 9.0, 1e-5);
  EXPECT_EQ(ema.num_updates(), 2);
  EXPECT_EQ(s.count("fourier"), 0u);  // frozen: not tracked
}

TEST(Ema, EdmBetaClosedForm) {
  // Ramp-up: half-life min(500k, 1e6·0.05) = 50k images.
  EXPECT_DOUBLE_EQ(Ema::edm_beta(500, 0.05, 512, 1000000), std::pow(0.5, 512.0 / 50000.0));
  // Past the ramp-up, the configured half-life.
  EXPECT_DOUBLE_EQ(Ema::edm_beta(500, 0.05, 512, 100000000), std::pow(0.5, 512.0 / 500000.0));
  // No ramp-up.
  EXPECT_DOUBLE_EQ(Ema::edm_beta(500, 0.0, 512, 0), std::pow(0.5, 512.0 / 500000.0));
  // First batch with ramp-up: half-life 0, so the EMA takes the weights.
  EXPECT_EQ(Ema::edm_beta(500, 0.05, 512, 0), 0.0);
  // Half-life equal to one batch halves the old average.
  EXPECT_DOUBLE_EQ(Ema::edm_beta(0.512, 0.0, 512, 0), 0.5);
}

TEST(Ema, EdmUpdatesByHand) {
  Toy model;
  model.set(1, 2, 3);
  Ema ema(model, ema_config(0.9999, {}, 500, 0.5));
  ASSERT_EQ(ema.names(), (std::vector<std::string>{"0.9999", "edm_500"}));
  model.set(5, 6, 7);
  ema.update(model, 4, 0);  // beta 0: copies the weights
  EXPECT_EQ(ema.shadow("edm_500").at("w")[0].item<float>(), 5.0f);
  model.set(9, 6, 7);
  ema.update(model, 4, 4);  // half-life min(5e5, 4·0.5) = 2 images: beta = 0.5^(4/2)
  EXPECT_NEAR(ema.shadow("edm_500").at("w")[0].item<float>(), 9 + 0.25 * (5 - 9), 1e-6);
  EXPECT_NEAR(ema.shadow("edm_500").at("w")[1].item<float>(), 6.0, 1e-6);
}

// A model of random float32 tensors, large enough for the CPU kernels'
// vectorised and scalar tails.
struct Wide : torch::nn::Module {
  Wide() {
    a = register_parameter("a", torch::randn({1031}));
    b = register_parameter("b", torch::randn({7, 3}));
  }
  torch::Tensor a, b;
};

TEST(Ema, EdmUpdateHasTheBitsOfLerp) {
  // EDM's EMA runs in multi-tensor kernels; each shadow must hold exactly
  // what torch::lerp(p, s, beta), the per-tensor form it replaced, gives:
  // beta >= 1/2 (past the ramp-up) and beta < 1/2 (its first steps), applied
  // and skipped.
  torch::manual_seed(3);
  Wide model;
  // Half-life 0.2 kimg, ramp-up 0.05: 64 images before give h = 3.2 images,
  // beta = 0.5^(4/3.2) < 1/2; 10^7 images before give h = 200, beta > 1/2.
  Ema ema(model, ema_config(0.9, {}, 0.2, 0.05));
  const std::string name = "edm_0.2";
  for (const int64_t before : {int64_t{64}, int64_t{10000000}}) {
    const float beta = static_cast<float>(Ema::edm_beta(0.2, 0.05, 4, before));
    ASSERT_EQ(beta < 0.5f, before == 64) << beta;
    for (const bool skip : {false, true}) {
      {
        torch::NoGradGuard no_grad;
        model.a.copy_(torch::randn_like(model.a));
        model.b.copy_(torch::randn_like(model.b));
      }
      const auto shadow = ema.shadow(name);
      std::map<std::string, torch::Tensor> expected;
      for (const auto& [param, s] : shadow) {
        const torch::Tensor p = param == "a" ? model.a.detach() : model.b.detach();
        expected[param] = skip ? s.clone() : torch::lerp(p, s, beta);
      }
      ema.update(model, 4, before, torch::full({}, skip ? 1.0 : 0.0, torch::kDouble));
      for (const auto& [param, s] : ema.shadow(name))
        EXPECT_TRUE(torch::equal(s, expected[param]))
            << param << " beta " << beta << (skip ? " skipped" : " applied") << ": max diff "
            << (s - expected[param]).abs().max().item<float>();
    }
  }
}

TEST(Ema, SeveralRatesEvolveIndependently) {
  Toy model;
  Ema ema(model, ema_config(0.9999, {0.5, 0.9999}, 2));
  ASSERT_EQ(ema.names(), (std::vector<std::string>{"0.9999", "0.5", "edm_2"}));
  EXPECT_EQ(ema.default_name(), "0.9999");
  double slow = 0, fast = 0;
  for (int n = 1; n <= 12; ++n) {
    const float p = static_cast<float>(n);
    model.set(p, p, p);
    ema.update(model, 10, 10 * (n - 1));
    slow -= (1 - Ema::warmup_decay(0.9999, n)) * (slow - p);
    fast -= (1 - Ema::warmup_decay(0.5, n)) * (fast - p);
  }
  EXPECT_NEAR(ema.shadow("0.9999").at("w")[0].item<float>(), slow, 1e-4);
  EXPECT_NEAR(ema.shadow("0.5").at("w")[0].item<float>(), fast, 1e-4);
  EXPECT_NE(slow, fast);
  EXPECT_THROW(ema.shadow("0.7"), Error);
}

TEST(Ema, ShadowsAreFloat32MasterCopies) {
  Toy model(torch::kFloat64);
  Ema ema(model, ema_config(0.9));
  EXPECT_EQ(ema.shadow("0.9").at("w").scalar_type(), torch::kFloat32);
  model.set(1, 1, 1);
  ema.update(model, 1, 0);
  ema.copy_to(model, "0.9");
  EXPECT_EQ(model.w.scalar_type(), torch::kFloat64);
}

TEST(Ema, CopyToStoreRestore) {
  Toy model;
  model.set(0, 0, 0);
  Ema ema(model, ema_config(0.9999));
  model.set(11, 11, 11);
  ema.update(model, 1, 0);  // shadow 9
  ema.store(model);
  ema.copy_to(model, "0.9999");
  EXPECT_NEAR(model.w[0].item<float>(), 9.0, 1e-5);
  EXPECT_EQ(model.fourier[0].item<float>(), 1.0f);  // frozen stays
  ema.restore(model);
  EXPECT_EQ(model.w[0].item<float>(), 11.0f);
  EXPECT_EQ(model.b.item<float>(), 11.0f);
}

TEST(Ema, StateRoundTrip) {
  Toy model;
  Ema ema(model, ema_config(0.999, {0.9}));
  for (int n = 1; n <= 3; ++n) {
    model.set(n, -n, 2 * n);
    ema.update(model, 8, 8 * (n - 1));
  }
  const auto state = ema.gather_state_dict(testing::local_comm());
  ASSERT_EQ(state.size(), 2u);

  Toy fresh;
  Ema resumed(fresh, ema_config(0.999, {0.9, 0.5}));  // 0.5 added on resume
  const auto missing = resumed.load_state_dict(state, ema.num_updates());
  EXPECT_EQ(missing, std::vector<std::string>{"0.5"});
  EXPECT_EQ(resumed.num_updates(), 3);
  for (const std::string name : {"0.999", "0.9"}) {
    EXPECT_TRUE(torch::equal(resumed.shadow(name).at("w"), ema.shadow(name).at("w")));
  }
  // Both continue identically.
  model.set(7, 7, 7);
  fresh.set(7, 7, 7);
  ema.update(model, 8, 24);
  resumed.update(fresh, 8, 24);
  EXPECT_TRUE(torch::equal(resumed.shadow("0.9").at("b"), ema.shadow("0.9").at("b")));

  // With the model given, an EMA missing from the state restarts from it.
  Toy loaded;
  loaded.set(3, 4, 5);
  Ema with_model(loaded, ema_config(0.999, {0.5}));
  loaded.set(6, 7, 8);  // weights loaded from the checkpoint after construction
  EXPECT_EQ(with_model.load_state_dict(state, 3, &loaded), std::vector<std::string>{"0.5"});
  EXPECT_EQ(with_model.shadow("0.5").at("w")[0].item<float>(), 6.0f);
  EXPECT_TRUE(torch::equal(with_model.shadow("0.999").at("w"), state.at("0.999").at("w")));

  auto bad = state;
  bad["0.9"]["w"] = torch::zeros({5});
  EXPECT_THROW(resumed.load_state_dict(bad, 3), Error);
  bad["0.9"].erase("w");
  EXPECT_THROW(resumed.load_state_dict(bad, 3), Error);
}

TEST(Ema, RejectsBadRates) {
  Toy model;
  EXPECT_THROW(Ema(model, ema_config(1.0)), Error);
  EXPECT_THROW(Ema(model, ema_config(0.999, {-0.1})), Error);
  EXPECT_THROW(Ema(model, ema_config(0.999, {}, -1)), Error);
  EXPECT_EQ(Ema::format_number(0.9999), "0.9999");
  EXPECT_EQ(Ema::format_number(500), "500");
}

// A skipped step (the device-side flag the trainer passes for a non-finite
// gradient) leaves every shadow bitwise and the update count as they were,
// for both EMA forms; the next applied step continues as if the skipped one
// never came.
TEST(Ema, SkippedUpdateChangesNothing) {
  Toy model, twin;
  model.set(1, 2, 3);
  twin.set(1, 2, 3);
  Ema ema(model, ema_config(0.999, {0.5}, 0.001, 0.0)), plain(twin, ema_config(0.999, {0.5}, 0.001, 0.0));
  model.set(4, -1, 0.25);
  twin.set(4, -1, 0.25);
  ema.update(model, 8, 0, torch::zeros({}, torch::kDouble));
  plain.update(twin, 8, 0);
  const auto before = ema.gather_state_dict(testing::local_comm());
  model.set(1e30, -7, 2);  // what a bad step would leave
  ema.update(model, 8, 8, torch::ones({}, torch::kDouble));
  EXPECT_EQ(ema.num_updates(), 1);
  for (const auto& [name, tensors] : ema.gather_state_dict(testing::local_comm()))
    for (const auto& [param, t] : tensors)
      EXPECT_TRUE(torch::equal(t, before.at(name).at(param))) << name << " " << param;
  model.set(5, 5, 5);
  twin.set(5, 5, 5);
  ema.update(model, 8, 16, torch::zeros({}, torch::kDouble));
  plain.update(twin, 8, 16);
  EXPECT_EQ(ema.num_updates(), plain.num_updates());
  const auto expected = plain.gather_state_dict(testing::local_comm());
  for (const auto& [name, tensors] : ema.gather_state_dict(testing::local_comm()))
    for (const auto& [param, t] : tensors)
      EXPECT_TRUE(torch::equal(t, expected.at(name).at(param))) << name << " " << param;
}

}  // namespace
}  // namespace scorch
