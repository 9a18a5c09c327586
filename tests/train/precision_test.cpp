// Mixed precision: the autocast guard (bfloat16 on the CPU), GroupNorm and
// attention staying float32 inside it, and the dynamic loss scaler's
// growth, backoff and checkpoint state.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "nn/layers.h"
#include "train/precision.h"

namespace scorch {
namespace {

PrecisionConfig fp16(double initial = 1024, int64_t interval = 3) {
  PrecisionConfig c;
  c.dtype = PrecisionDtype::kFp16;
  c.initial_scale = initial;
  c.growth_interval = interval;
  return c;
}

TEST(Precision, AutocastDtypeFollowsTheConfigAndDevice) {
  PrecisionConfig c;
  EXPECT_FALSE(autocast_dtype(c, torch::kCPU).has_value());
  c.dtype = PrecisionDtype::kBf16;
  EXPECT_EQ(autocast_dtype(c, torch::kCPU), torch::kBFloat16);
  c.dtype = PrecisionDtype::kFp16;  // LibTorch's CPU autocast has no float16
  EXPECT_FALSE(autocast_dtype(c, torch::kCPU).has_value());
  EXPECT_EQ(autocast_dtype(c, torch::Device(torch::kCUDA, 0)), torch::kHalf);
}

TEST(Precision, Bf16AutocastGuardCastsMatmulsAndRestoresTheState) {
  torch::manual_seed(0);
  torch::nn::Linear linear(8, 4);
  const auto x = torch::randn({3, 8});
  const auto reference = linear(x);
  {
    AutocastGuard guard(torch::kCPU, torch::kBFloat16);
    const auto y = linear(x);
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    // bfloat16 keeps 8 significant bits: relative error below 2^-7 per product sum.
    EXPECT_TRUE(torch::allclose(y.to(torch::kFloat), reference, 2e-2, 2e-2));
  }
  EXPECT_EQ(linear(x).scalar_type(), torch::kFloat) << "autocast left on after the guard";
  {
    AutocastGuard off(torch::kCPU, std::nullopt);
    EXPECT_EQ(linear(x).scalar_type(), torch::kFloat);
  }
}

TEST(Precision, GroupNormComputesInFloat32UnderAutocast) {
  torch::manual_seed(1);
  auto norm = make_group_norm(8, GroupRule::kQuarterUpTo32);
  // Large offset and small spread: the variance is lost if computed in bfloat16.
  const auto x = 1000.0 + 0.5 * torch::randn({2, 8, 4, 4});
  const auto reference = norm(x);
  const auto low = x.to(torch::kBFloat16);
  AutocastGuard guard(torch::kCPU, torch::kBFloat16);
  const auto y = norm(low);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  // The input itself is rounded to bfloat16 (spacing 4 at 1000), so compare
  // with the float32 norm of the rounded input.
  const auto expected = norm(low.to(torch::kFloat));
  EXPECT_TRUE(torch::allclose(y.to(torch::kFloat), expected, 1e-2, 2e-2));
  EXPECT_TRUE(torch::isfinite(reference).all().item<bool>());
}

TEST(Precision, AttentionBlockRunsUnderBf16Autocast) {
  torch::manual_seed(2);
  AttnBlock block(AttnBlockOptions(8));
  const auto x = torch::randn({2, 8, 4, 4});
  const auto reference = block(x);
  AutocastGuard guard(torch::kCPU, torch::kBFloat16);
  const auto y = block(x).to(torch::kFloat);
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  EXPECT_LT((y - reference).abs().max().item<double>(), 0.1);
}

TEST(Precision, LossScalerBacksOffOnOverflowAndGrowsAfterTheInterval) {
  LossScaler s(fp16(1024, 3), true);
  EXPECT_DOUBLE_EQ(s.scale(), 1024);
  s.update(false);
  EXPECT_DOUBLE_EQ(s.scale(), 512);
  s.update(true);
  s.update(true);
  EXPECT_DOUBLE_EQ(s.scale(), 512);
  EXPECT_EQ(s.growth_tracker(), 2);
  s.update(false);  // an overflow resets the count
  EXPECT_DOUBLE_EQ(s.scale(), 256);
  for (int i = 0; i < 3; ++i) s.update(true);
  EXPECT_DOUBLE_EQ(s.scale(), 512);
  EXPECT_EQ(s.growth_tracker(), 0);
}

TEST(Precision, DisabledScalerIsOneAndNeverChanges) {
  LossScaler s(fp16(), false);
  s.update(false);
  for (int i = 0; i < 10; ++i) s.update(true);
  EXPECT_DOUBLE_EQ(s.scale(), 1);
}

TEST(Precision, UnscaleDividesEveryGradient) {
  LossScaler s(fp16(8), true);
  auto p = torch::ones({3}, torch::requires_grad());
  (p * torch::tensor({1.0f, 2.0f, 3.0f}) * s.scale()).sum().backward();
  s.unscale({p});
  EXPECT_TRUE(torch::allclose(p.grad(), torch::tensor({1.0f, 2.0f, 3.0f})));
}

TEST(Precision, ScalerStateRoundTripsAndRejectsMalformedEntries) {
  LossScaler a(fp16(1024, 5), true);
  a.update(false);
  a.update(true);
  LossScaler b(fp16(1024, 5), true);
  b.load_state(a.state(), "test");
  EXPECT_DOUBLE_EQ(b.scale(), 512);
  EXPECT_EQ(b.growth_tracker(), 1);
  c10::impl::GenericDict bad(c10::StringType::get(), c10::AnyType::get());
  bad.insert("scale", -1.0);
  bad.insert("growth_tracker", int64_t{0});
  EXPECT_THROW(b.load_state(bad, "ckpt"), Error);
  EXPECT_THROW(b.load_state(c10::IValue(int64_t{3}), "ckpt"), Error);
}

TEST(Precision, NonfiniteTensorNamesListsOnlyTheBadOnes) {
  std::vector<std::pair<std::string, torch::Tensor>> named = {
      {"a", torch::ones({2})},
      {"b", torch::tensor({1.0f, std::nanf("")})},
      {"c", torch::tensor({INFINITY})}};
  EXPECT_EQ(nonfinite_tensor_names(named), (std::vector<std::string>{"b", "c"}));
}

}  // namespace
}  // namespace scorch
