// Optimizer: score_sde's warm-up and clip_grad_norm_ against hand-computed
// values, Adam / AdamW steps against their closed forms (Kingma & Ba Alg. 1 in
// PyTorch's bias-corrected form; Loshchilov & Hutter decoupled decay), and an
// exact state round trip.
#include "train/optimizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "testing/local_comm.h"

namespace scorch {
namespace {

OptimConfig adam_config(double lr = 0.1, int64_t warmup = 0, double clip = 0.0) {
  OptimConfig c;
  c.lr = lr;
  c.warmup = warmup;
  c.grad_clip = clip;
  return c;
}

torch::OrderedDict<std::string, torch::Tensor> params_of(
    std::initializer_list<std::pair<std::string, torch::Tensor>> items) {
  torch::OrderedDict<std::string, torch::Tensor> out;
  for (const auto& item : items) out.insert(item.first, item.second);
  return out;
}

torch::Tensor param(std::vector<float> values) {
  return torch::tensor(values, torch::kFloat32).requires_grad_(true);
}

void set_grad(torch::Tensor& p, std::vector<float> values) {
  p.mutable_grad() = torch::tensor(values, torch::kFloat32);
}

TEST(Optimizer, WarmupIsLinearFromZero) {
  Optimizer opt(params_of({{"w", param({1.0f})}}), adam_config(2e-4, 5000));
  EXPECT_EQ(opt.lr_at(0), 0.0);
  EXPECT_DOUBLE_EQ(opt.lr_at(2500), 1e-4);
  EXPECT_DOUBLE_EQ(opt.lr_at(1), 2e-4 / 5000);
  EXPECT_DOUBLE_EQ(opt.lr_at(5000), 2e-4);
  EXPECT_DOUBLE_EQ(opt.lr_at(123456), 2e-4);
  Optimizer no_warmup(params_of({{"w", param({1.0f})}}), adam_config(2e-4, 0));
  EXPECT_DOUBLE_EQ(no_warmup.lr_at(0), 2e-4);
}

TEST(Optimizer, StepZeroOfWarmupLeavesParametersUnchanged) {
  torch::Tensor w = param({1.5f, -2.0f});
  Optimizer opt(params_of({{"w", w}}), adam_config(0.1, 10));
  set_grad(w, {0.3f, 0.4f});
  opt.step(0);
  EXPECT_EQ(w[0].item<float>(), 1.5f);
  EXPECT_EQ(w[1].item<float>(), -2.0f);
  // Moments still advance.
  EXPECT_EQ(opt.gather_state_dict(testing::local_comm()).at("w.step").item<int64_t>(), 1);
}

TEST(Optimizer, ClipsToGlobalNormLikeClipGradNorm) {
  torch::Tensor a = param({0.0f}), b = param({0.0f});
  set_grad(a, {3.0f});
  set_grad(b, {4.0f});
  const double norm = Optimizer::clip_grad_norm({a, b}, 1.0);
  EXPECT_NEAR(norm, 5.0, 1e-6);
  const double coef = 1.0 / (5.0 + 1e-6);
  EXPECT_NEAR(a.grad().item<float>(), 3.0 * coef, 1e-7);
  EXPECT_NEAR(b.grad().item<float>(), 4.0 * coef, 1e-7);
}

TEST(Optimizer, NoClippingBelowTheLimitOrWhenDisabled) {
  torch::Tensor a = param({3.0f, 0.0f}), b = param({0.0f});
  set_grad(a, {3.0f, 0.0f});
  set_grad(b, {4.0f});
  EXPECT_NEAR(Optimizer::clip_grad_norm({a, b}, 10.0), 5.0, 1e-6);
  EXPECT_EQ(a.grad()[0].item<float>(), 3.0f);
  EXPECT_EQ(b.grad().item<float>(), 4.0f);
  EXPECT_NEAR(Optimizer::clip_grad_norm({a, b}, 0.0), 5.0, 1e-6);
  EXPECT_EQ(b.grad().item<float>(), 4.0f);
}

// Adam with PyTorch's bias correction, in double: returns the new parameter.
struct AdamRef {
  double m = 0, v = 0;
  int t = 0;
  double step(double p, double g, double lr, double b1, double b2, double eps) {
    ++t;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    return p - (lr / bc1) * m / (std::sqrt(v) / std::sqrt(bc2) + eps);
  }
};

TEST(Optimizer, AdamMatchesClosedForm) {
  torch::Tensor w = param({1.0f, -0.5f});
  Optimizer opt(params_of({{"w", w}}), adam_config(0.1));
  const std::vector<std::vector<float>> grads = {{0.2f, -1.0f}, {-0.7f, 0.05f}, {0.3f, 0.3f}};
  AdamRef ref[2];
  double expected[2] = {1.0, -0.5};
  for (int s = 0; s < 3; ++s) {
    set_grad(w, grads[s]);
    opt.step(100 + s);
    for (int i = 0; i < 2; ++i) {
      expected[i] = ref[i].step(expected[i], grads[s][i], 0.1, 0.9, 0.999, 1e-8);
      EXPECT_NEAR(w[i].item<float>(), expected[i], 1e-6) << "step " << s << " elem " << i;
    }
  }
}

TEST(Optimizer, AdamWeightDecayIsL2InTheGradient) {
  torch::Tensor w = param({2.0f});
  OptimConfig c = adam_config(0.01);
  c.weight_decay = 0.5;
  Optimizer opt(params_of({{"w", w}}), c);
  set_grad(w, {0.1f});
  opt.step(0);
  AdamRef ref;
  const double expected = ref.step(2.0, 0.1 + 0.5 * 2.0, 0.01, 0.9, 0.999, 1e-8);
  EXPECT_NEAR(w.item<float>(), expected, 1e-6);
}

TEST(Optimizer, AdamWDecaysDecoupled) {
  torch::Tensor w = param({2.0f});
  OptimConfig c = adam_config(0.01);
  c.optimizer = OptimizerName::kAdamW;
  c.weight_decay = 0.5;
  Optimizer opt(params_of({{"w", w}}), c);
  set_grad(w, {0.1f});
  opt.step(0);
  // p ← p(1 − lr·wd), then the Adam step on the raw gradient: one step of
  // Adam moves by lr·g/(|g| + eps) ≈ lr·sign(g).
  const double decayed = 2.0 * (1 - 0.01 * 0.5);
  AdamRef ref;
  const double expected = ref.step(decayed, 0.1, 0.01, 0.9, 0.999, 1e-8);
  EXPECT_NEAR(w.item<float>(), expected, 1e-6);
  EXPECT_NEAR(w.item<float>(), 2.0 * 0.995 - 0.01, 1e-6);
}

TEST(Optimizer, StepClipsBeforeAdamAndReturnsPreClipNorm) {
  torch::Tensor a = param({0.0f}), b = param({0.0f});
  Optimizer opt(params_of({{"a", a}, {"b", b}}), adam_config(0.1, 0, 1.0));
  set_grad(a, {3.0f});
  set_grad(b, {4.0f});
  EXPECT_NEAR(opt.step(0), 5.0, 1e-6);
  // Adam saw the clipped gradient: exp_avg = (1 − β1)·g·coef.
  const auto state = opt.gather_state_dict(testing::local_comm());
  EXPECT_NEAR(state.at("a.exp_avg").item<float>(), 0.1 * 3.0 / (5.0 + 1e-6), 1e-7);
}

TEST(Optimizer, FrozenParametersAreLeftOut) {
  torch::Tensor w = param({1.0f});
  torch::Tensor frozen = torch::ones({3});
  Optimizer opt(params_of({{"w", w}, {"fourier.W", frozen}}), adam_config());
  ASSERT_EQ(opt.names().size(), 1u);
  EXPECT_EQ(opt.names()[0], "w");
}

TEST(Optimizer, StateRoundTripContinuesBitIdentically) {
  for (const OptimizerName kind : {OptimizerName::kAdam, OptimizerName::kAdamW}) {
    OptimConfig c = adam_config(0.05, 3, 0.5);
    c.optimizer = kind;
    c.weight_decay = 0.01;
    torch::manual_seed(0);
    torch::Tensor w = torch::randn({4, 3}).requires_grad_(true);
    torch::Tensor b = torch::randn({3}).requires_grad_(true);
    Optimizer first(params_of({{"net.w", w}, {"net.b", b}}), c);
    auto grads_at = [](int s) {
      torch::manual_seed(100 + s);
      return std::make_pair(torch::randn({4, 3}), torch::randn({3}));
    };
    for (int s = 0; s < 4; ++s) {
      auto g = grads_at(s);
      w.mutable_grad() = g.first;
      b.mutable_grad() = g.second;
      first.step(s);
    }
    const auto state = first.gather_state_dict(testing::local_comm());
    ASSERT_EQ(state.size(), 6u);
    EXPECT_EQ(state.at("net.w.step").item<int64_t>(), 4);

    torch::Tensor w2 = w.detach().clone().requires_grad_(true);
    torch::Tensor b2 = b.detach().clone().requires_grad_(true);
    Optimizer resumed(params_of({{"net.w", w2}, {"net.b", b2}}), c);
    resumed.load_state_dict(state);
    for (int s = 4; s < 7; ++s) {
      auto g = grads_at(s);
      w.mutable_grad() = g.first.clone();
      b.mutable_grad() = g.second.clone();
      w2.mutable_grad() = g.first.clone();
      b2.mutable_grad() = g.second.clone();
      first.step(s);
      resumed.step(s);
    }
    EXPECT_TRUE(torch::equal(w, w2)) << kind;
    EXPECT_TRUE(torch::equal(b, b2)) << kind;
  }
}

TEST(Optimizer, LoadStateRejectsMismatches) {
  torch::Tensor w = param({1.0f, 2.0f});
  Optimizer opt(params_of({{"w", w}}), adam_config());
  std::map<std::string, torch::Tensor> state = {{"w.exp_avg", torch::zeros({3})},
                                                {"w.exp_avg_sq", torch::zeros({3})},
                                                {"w.step", torch::tensor(int64_t{1})}};
  EXPECT_THROW(opt.load_state_dict(state), Error);  // shape
  state["w.exp_avg"] = torch::zeros({2});
  state["w.exp_avg_sq"] = torch::zeros({2});
  EXPECT_NO_THROW(opt.load_state_dict(state));
  state["v.step"] = torch::tensor(int64_t{1});
  EXPECT_THROW(opt.load_state_dict(state), Error);  // unknown parameter
  state.erase("v.step");
  state.erase("w.exp_avg_sq");
  EXPECT_THROW(opt.load_state_dict(state), Error);  // incomplete
}

TEST(Optimizer, RejectsUnknownOptimizer) {
  EXPECT_THROW(parse_config("{}", "test", {"optim.optimizer=SGD"}), Error);
}

// A skipped step (the trainer's device-side flag) changes no parameter,
// moment or step count; the next step is the one a run without the bad
// step would take.
TEST(Optimizer, SkippedStepChangesNothing) {
  torch::Tensor w = param({1.0f, -0.5f}), twin = param({1.0f, -0.5f});
  Optimizer opt(params_of({{"w", w}}), adam_config(0.1)),
      plain(params_of({{"w", twin}}), adam_config(0.1));
  set_grad(w, {0.2f, -1.0f});
  set_grad(twin, {0.2f, -1.0f});
  opt.apply(1, torch::zeros({}, torch::kDouble));
  plain.apply(1);
  const auto state = opt.gather_state_dict(testing::local_comm());
  const auto w1 = w.detach().clone();
  set_grad(w, {NAN, 1.0f});
  opt.apply(2, torch::ones({}, torch::kDouble));
  EXPECT_TRUE(torch::equal(w, w1));
  for (const auto& [key, t] : opt.gather_state_dict(testing::local_comm()))
    EXPECT_TRUE(torch::equal(t, state.at(key))) << key;
  set_grad(w, {-0.7f, 0.05f});
  set_grad(twin, {-0.7f, 0.05f});
  opt.apply(2, torch::zeros({}, torch::kDouble));
  plain.apply(2);
  EXPECT_TRUE(torch::equal(w, twin));
  EXPECT_EQ(opt.gather_state_dict(testing::local_comm()).at("w.step").item<int64_t>(), 2);
}

// optim.schedule=inverse_sqrt is EDM2's learning_rate_schedule (NVlabs/edm2
// training/training_loop.py):
// lr(t) = ref_lr / sqrt(max(t / t_ref, 1)) * min(t / t_rampup, 1)
// with t in images, t_ref = ref_batches x batch size; in steps of a batch
// of 512 the same numbers.
TEST(Optimizer, InverseSqrtScheduleIsEdm2s) {
  OptimConfig c = adam_config(0.01, 100);
  c.schedule = LrSchedule::kInverseSqrt;
  c.ref_steps = 1000;
  Optimizer opt(params_of({{"w", param({1.0f})}}), c);
  const double batch = 512, ref_batches = 1000, rampup_img = 100 * batch;
  for (int64_t step : {0, 1, 50, 99, 100, 500, 999, 1000, 1001, 4000, 250000}) {
    const double nimg = static_cast<double>(step) * batch;
    const double expected = 0.01 / std::sqrt(std::max(nimg / (ref_batches * batch), 1.0)) *
                            std::min(nimg / rampup_img, 1.0);
    EXPECT_NEAR(opt.lr_at(step), expected, 1e-15) << step;
  }
  EXPECT_DOUBLE_EQ(opt.lr_at(4000), 0.005);  // four times t_ref: half the rate
  c.schedule = LrSchedule::kConstant;
  Optimizer constant(params_of({{"w", param({1.0f})}}), c);
  EXPECT_DOUBLE_EQ(constant.lr_at(4000), 0.01);
}

}  // namespace
}  // namespace scorch
