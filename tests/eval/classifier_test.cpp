// The built-in classifier's input convention (eval/classifier.h): grayscale
// 28x28 passes through as x / 127.5 - 1; RGB becomes BT.601 luminance;
// other sizes are resized bilinearly with half-pixel centres.
#include <gtest/gtest.h>

#include "eval/classifier.h"

namespace scorch {
namespace {

TEST(ClassifierInput, GrayscaleAtTheNativeSizeIsOnlyRescaled) {
  const auto img = torch::randint(0, 256, {2, 1, 28, 28}).to(torch::kByte);
  const auto x = classifier_input(img);
  EXPECT_TRUE(torch::allclose(x, img.to(torch::kFloat) / 127.5 - 1, 0, 1e-6));
}

TEST(ClassifierInput, RgbBecomesLuminance) {
  auto img = torch::empty({1, 3, 28, 28}, torch::kByte);
  img[0][0].fill_(200), img[0][1].fill_(100), img[0][2].fill_(50);
  const double y = 0.299 * 200 + 0.587 * 100 + 0.114 * 50;
  const auto x = classifier_input(img);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{1, 1, 28, 28}));
  EXPECT_NEAR(x.min().item<double>(), y / 127.5 - 1, 1e-5);
  EXPECT_NEAR(x.max().item<double>(), y / 127.5 - 1, 1e-5);
}

TEST(ClassifierInput, OtherSizesAreResizedBilinearlyWithHalfPixelCentres) {
  // A horizontal ramp of 56 columns, value 4 j: halving with half-pixel
  // centres samples source column 2 i + 0.5, the mean of columns 2i and 2i+1.
  auto ramp = (torch::arange(56) * 4).to(torch::kByte).view({1, 1, 1, 56}).expand({1, 1, 56, 56});
  const auto x = (classifier_input(ramp.contiguous()) + 1) * 127.5;
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{1, 1, 28, 28}));
  for (int64_t i = 0; i < 28; ++i)
    EXPECT_NEAR(x[0][0][10][i].item<double>(), 4 * (2 * i + 0.5), 1e-3) << i;
  EXPECT_THROW(classifier_input(torch::zeros({1, 2, 28, 28}, torch::kByte)), std::exception);
}

TEST(Classifier, FeaturesAre128DimensionalAndLogitsTen) {
  ImageClassifier net(10);
  const auto x = torch::zeros({3, 1, 28, 28});
  EXPECT_EQ(net->features(x).sizes(), (std::vector<int64_t>{3, 128}));
  EXPECT_EQ(net->forward(x).sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_GE(net->features(torch::randn({3, 1, 28, 28})).min().item<double>(), 0.0);  // ReLU
}

}  // namespace
}  // namespace scorch
