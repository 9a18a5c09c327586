// FIR resampling (nn/resample.h) against closed forms: the impulse response
// of upfirdn2d, constant images, the [1,1] kernel as nearest / mean pooling,
// and the composite filter of a [1,3,3,1] up-then-down round trip.
#include "nn/resample.h"

#include <gtest/gtest.h>

namespace scorch {
namespace {

namespace F = torch::nn::functional;

TEST(Resample, FirKernelIsNormalisedOuterProduct) {
  auto k = make_fir_kernel({1, 3, 3, 1}, 1.0);
  ASSERT_EQ(k.sizes(), (std::vector<int64_t>{4, 4}));
  EXPECT_NEAR(k.sum().item<double>(), 1.0, 1e-7);
  EXPECT_NEAR(k[1][2].item<double>(), 9.0 / 64.0, 1e-8);
  EXPECT_NEAR(make_fir_kernel({1, 3, 3, 1}, 4.0).sum().item<double>(), 4.0, 1e-6);
}

TEST(Resample, Upfirdn2dImpulseResponseIsTheKernel) {
  // A true convolution of an impulse reproduces the (asymmetric) kernel.
  auto x = torch::zeros({1, 1, 5, 5});
  x[0][0][2][2] = 1.0;
  auto kernel = torch::arange(9, torch::kFloat).reshape({3, 3});
  auto y = upfirdn2d(x, kernel, 1, 1, 2, 2);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{1, 1, 7, 7}));
  EXPECT_TRUE(torch::equal(y[0][0].slice(0, 2, 5).slice(1, 2, 5), kernel));
  EXPECT_EQ(y.sum().item<float>(), kernel.sum().item<float>());
}

TEST(Resample, Upfirdn2dUpInsertsZerosAndDownDecimates) {
  auto x = torch::arange(1, 5, torch::kFloat).reshape({1, 1, 2, 2});
  auto one = torch::ones({1, 1});
  auto up = upfirdn2d(x, one, 2, 1, 0, 0);  // zero insertion only
  ASSERT_EQ(up.sizes(), (std::vector<int64_t>{1, 1, 4, 4}));
  EXPECT_EQ(up[0][0][0][0].item<float>(), 1.0f);
  EXPECT_EQ(up[0][0][0][2].item<float>(), 2.0f);
  EXPECT_EQ(up[0][0][2][0].item<float>(), 3.0f);
  EXPECT_EQ(up.sum().item<float>(), 10.0f);
  EXPECT_TRUE(torch::equal(upfirdn2d(up, one, 1, 2, 0, 0), x));
  // Negative pads crop.
  EXPECT_EQ(upfirdn2d(up, one, 1, 1, -1, -1).sizes(), (std::vector<int64_t>{1, 1, 2, 2}));
}

TEST(Resample, UpsampleOfConstantIsConstantInside) {
  // 1-D taps [1,3,3,1]/4 on the zero-inserted signal: inside, each output sees
  // taps 1+3 or 3+1 -> the constant; at the border only the 3 -> 3/4.
  auto y = upsample_2d(torch::full({2, 3, 4, 4}, 2.0), {1, 3, 3, 1});
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 3, 8, 8}));
  EXPECT_TRUE(torch::allclose(y.slice(2, 1, 7).slice(3, 1, 7), torch::full({2, 3, 6, 6}, 2.0)));
  EXPECT_NEAR(y[0][0][0][3].item<double>(), 2.0 * 0.75, 1e-6);
  EXPECT_NEAR(y[0][0][0][0].item<double>(), 2.0 * 0.75 * 0.75, 1e-6);
  EXPECT_NEAR(y[1][2][7][7].item<double>(), 2.0 * 0.75 * 0.75, 1e-6);
}

TEST(Resample, DownsampleOfConstantIsConstantInside) {
  // Window [0, x0, x1, x2] at the border: (3 + 3 + 1) / 8.
  auto y = downsample_2d(torch::ones({1, 1, 8, 8}), {1, 3, 3, 1});
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{1, 1, 4, 4}));
  EXPECT_TRUE(torch::allclose(y.slice(2, 1, 3).slice(3, 1, 3), torch::ones({1, 1, 2, 2})));
  EXPECT_NEAR(y[0][0][0][1].item<double>(), 7.0 / 8.0, 1e-6);
  EXPECT_NEAR(y[0][0][3][3].item<double>(), 49.0 / 64.0, 1e-6);
}

TEST(Resample, BoxKernelIsNearestAndMeanPooling) {
  torch::manual_seed(0);
  auto x = torch::randn({2, 3, 6, 6});
  auto up = upsample_2d(x, {1, 1});
  EXPECT_TRUE(torch::allclose(up, naive_upsample_2d(x), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(
      up,
      F::interpolate(
          x,
          F::InterpolateFuncOptions().size(std::vector<int64_t>{12, 12}).mode(torch::kNearest))));
  EXPECT_TRUE(torch::allclose(downsample_2d(x, {1, 1}), naive_downsample_2d(x), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(downsample_2d(x, {1, 1}),
                              F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2)), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(downsample_2d(up, {1, 1}), x, 1e-6, 1e-6));
}

TEST(Resample, DownOfUpIsTheCompositeFilterInside) {
  // up: zero-insert, filter [1,3,3,1]/4; down: filter [1,3,3,1]/8, decimate.
  // Composite [1,6,15,20,15,6,1]/32 sampled at even offsets: [6,20,6]/32 =
  // [3,10,3]/16 per axis.
  torch::manual_seed(1);
  auto x = torch::randn({1, 2, 12, 12});
  auto z = downsample_2d(upsample_2d(x, {1, 3, 3, 1}), {1, 3, 3, 1});
  auto k1 = torch::tensor({3.0f, 10.0f, 3.0f}) / 16.0;
  auto k = torch::outer(k1, k1).view({1, 1, 3, 3}).repeat({2, 1, 1, 1});
  auto expected = F::conv2d(x, k, F::Conv2dFuncOptions().padding(1).groups(2));
  auto inside = [](const torch::Tensor& t) { return t.slice(2, 1, 11).slice(3, 1, 11); };
  EXPECT_LT((inside(z) - inside(expected)).abs().max().item<double>(), 1e-5);
}

TEST(Resample, FusedConvResamplingMatchesUnfusedInside) {
  // StyleGAN2's fused ops equal "resample then conv" / "conv then resample"
  // away from the borders (they pad once instead of twice).
  torch::manual_seed(2);
  auto x = torch::randn({2, 3, 8, 8});
  auto w = torch::randn({4, 3, 3, 3});
  const std::vector<int64_t> taps = {1, 3, 3, 1};
  auto up_fused = upsample_conv_2d(x, w, taps);
  auto up_plain = F::conv2d(upsample_2d(x, taps), w, F::Conv2dFuncOptions().padding(1));
  ASSERT_EQ(up_fused.sizes(), (std::vector<int64_t>{2, 4, 16, 16}));
  auto in_up = [](const torch::Tensor& t) { return t.slice(2, 2, 14).slice(3, 2, 14); };
  EXPECT_LT((in_up(up_fused) - in_up(up_plain)).abs().max().item<double>(), 1e-4);
  // With the box kernel both are exactly nearest-upsample + conv everywhere.
  auto box_fused = upsample_conv_2d(x, w, {1, 1});
  auto box_plain = F::conv2d(naive_upsample_2d(x), w, F::Conv2dFuncOptions().padding(1));
  EXPECT_LT((box_fused - box_plain).abs().max().item<double>(), 1e-4);

  auto down_fused = conv_downsample_2d(x, w, taps);
  auto down_plain = downsample_2d(F::conv2d(x, w, F::Conv2dFuncOptions().padding(1)), taps);
  ASSERT_EQ(down_fused.sizes(), (std::vector<int64_t>{2, 4, 4, 4}));
  auto in_down = [](const torch::Tensor& t) { return t.slice(2, 1, 3).slice(3, 1, 3); };
  EXPECT_LT((in_down(down_fused) - in_down(down_plain)).abs().max().item<double>(), 1e-4);
}

TEST(Resample, ModulesHaveTheReferenceShapesAndNames) {
  auto x = torch::randn({1, 8, 8, 8});
  Upsample up_fir(ResampleOptions(8).out_ch(16).with_conv(true).fir(true));
  EXPECT_EQ(up_fir(x).sizes(), (std::vector<int64_t>{1, 16, 16, 16}));
  EXPECT_EQ(up_fir->named_parameters().size(), 2u);
  EXPECT_TRUE(up_fir->named_parameters().contains("Conv2d_0.weight"));
  Downsample down(ResampleOptions(8).with_conv(true));
  EXPECT_EQ(down(x).sizes(), (std::vector<int64_t>{1, 8, 4, 4}));
  EXPECT_TRUE(down->named_parameters().contains("Conv_0.bias"));
  Downsample pool(ResampleOptions(8));
  EXPECT_TRUE(torch::allclose(pool(x), naive_downsample_2d(x), 1e-6, 1e-6));
  EXPECT_EQ(pool->parameters().size(), 0u);
}

}  // namespace
}  // namespace scorch
