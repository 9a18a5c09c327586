// training.zero_nonfinite_grads (train/precision.h): EDM2's force_finite,
// torch.nan_to_num(g, nan=0, posinf=0, neginf=0) on every gradient. NaN,
// +inf and -inf entries become 0 and every other entry keeps its bits, in
// gradients of every layout the networks make (contiguous, channels_last,
// 0-dim, empty), cut into one chunk (CUDA's) or many (the CPU's); and with the
// key on a non-finite gradient does not count towards skipping the step,
// while fp16's found_inf (a loss-scale overflow) still does.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "train/chunks.h"
#include "train/precision.h"

namespace scorch {
namespace {

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Parameters whose gradients hold NaN, +inf and -inf at known places.
std::vector<torch::Tensor> params_with_bad_grads() {
  torch::manual_seed(1);
  std::vector<torch::Tensor> params;
  auto add = [&](torch::Tensor grad) {
    auto p = torch::zeros_like(grad, torch::MemoryFormat::Preserve).requires_grad_(true);
    p.mutable_grad() = grad;
    params.push_back(p);
  };
  auto a = torch::randn({5, 7});
  a[1][2] = kNan;
  a[4][6] = kInf;
  add(a);
  auto b = torch::randn({2, 3, 4, 4}).contiguous(torch::MemoryFormat::ChannelsLast);
  b[1][2][3][0] = -kInf;
  b[0][0][0][0] = kNan;
  add(b);
  add(torch::randn({100}));  // finite throughout
  add(torch::full({}, -kInf));
  add(torch::zeros({0, 3}));
  auto c = torch::randn({3000});
  c[2999] = kNan;
  add(c);
  auto frozen = torch::zeros({3});  // no gradient: left alone
  params.push_back(frozen);
  return params;
}

void expect_zeroed(const std::vector<torch::Tensor>& before, const std::vector<torch::Tensor>& params) {
  for (size_t i = 0; i + 1 < params.size(); ++i) {
    const auto& g = params[i].grad();
    const auto& old = before[i];
    ASSERT_EQ(g.sizes(), old.sizes());
    const auto finite = torch::isfinite(old);
    EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << i;
    EXPECT_TRUE(g.masked_select(finite.logical_not()).eq(0).all().item<bool>()) << i;
    // Bitwise: the same float32 bit patterns where the gradient was finite.
    EXPECT_TRUE(torch::equal(g.masked_select(finite).view(torch::kInt32),
                             old.masked_select(finite).view(torch::kInt32)))
        << i;
  }
  EXPECT_TRUE(params[1].grad().is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_FALSE(params.back().grad().defined());
}

TEST(ZeroNonfiniteGrads, ZeroesNanAndInfinitiesAndKeepsEveryOtherBit) {
  for (int64_t chunk : {int64_t{0}, int64_t{64}, int64_t{1} << 20}) {
    auto params = params_with_bad_grads();
    std::vector<torch::Tensor> before;
    for (size_t i = 0; i + 1 < params.size(); ++i) before.push_back(params[i].grad().clone());
    ChunkElementsScope scope(chunk);
    const auto found = zero_nonfinite_grads(params, /*report=*/true);
    ASSERT_TRUE(found.defined());
    EXPECT_EQ(found.item<float>(), 1.0f) << "chunk " << chunk;
    expect_zeroed(before, params);
    // Finite now: nothing more to find, nothing changes.
    std::vector<torch::Tensor> again;
    for (size_t i = 0; i + 1 < params.size(); ++i) again.push_back(params[i].grad().clone());
    EXPECT_EQ(zero_nonfinite_grads(params, true).item<float>(), 0.0f);
    for (size_t i = 0; i + 1 < params.size(); ++i)
      EXPECT_TRUE(torch::equal(params[i].grad(), again[i]));
    EXPECT_FALSE(zero_nonfinite_grads(params).defined());  // no report asked
  }
}

TEST(ZeroNonfiniteGrads, WithTheKeyOnANonfiniteGradientDoesNotSkipButAnOverflowDoes) {
  auto params = params_with_bad_grads();
  params.pop_back();
  const auto norm = [&] {
    std::vector<torch::Tensor> grads;
    for (const auto& p : params) grads.push_back(p.grad());
    return torch::stack(torch::_foreach_norm(grads, 2)).norm(2);
  };
  const torch::Tensor none;  // no loss scale (fp32, bf16)
  EXPECT_TRUE(nonfinite_gradients(norm(), none, /*zeroed=*/false).item<bool>());  // key off: skip
  zero_nonfinite_grads(params);
  const auto after = norm();
  EXPECT_TRUE(std::isfinite(after.item<double>()));
  EXPECT_FALSE(nonfinite_gradients(after, none, /*zeroed=*/true).item<bool>());  // the step is taken
  // Key on, a non-finite norm (float32 overflow of finite gradients) still steps.
  EXPECT_FALSE(nonfinite_gradients(torch::full({}, kInf), none, true).item<bool>());
  // fp16: the unscale's found_inf is a loss-scale overflow, which skips (and backs off).
  EXPECT_TRUE(nonfinite_gradients(after, torch::ones({}), true).item<bool>());
  EXPECT_FALSE(nonfinite_gradients(after, torch::zeros({}), true).item<bool>());
  LossScaler scaler([] {
    PrecisionConfig c;
    c.dtype = PrecisionDtype::kFp16;
    c.initial_scale = 1024;
    return c;
  }(), true);
  scaler.update(nonfinite_gradients(after, torch::ones({}), true).to(torch::kDouble));
  EXPECT_EQ(scaler.scale(), 512);
}

}  // namespace
}  // namespace scorch
