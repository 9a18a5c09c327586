// The TorchScript feature-extractor path with a small TorchScript module made
// here, following the StyleGAN2-ADA Inception calling convention: features
// (per-channel means of the [0, 255] input), class probabilities without the
// output bias, grayscale repeated to RGB, and clear errors for bad files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "eval/features.h"

namespace scorch {
namespace {

namespace fs = std::filesystem;

struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& name)
      : path(fs::temp_directory_path() / (std::to_string(::getpid()) + "_" + name)) {}
  ~TempFile() { fs::remove(path); }
};

// forward(img, return_features, use_fp16, no_output_bias) as the NVIDIA
// detector: features = channel means; probabilities = softmax(f W (+ b)).
void save_detector(const std::string& path) {
  torch::jit::Module m("Detector");
  m.register_parameter("w", torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {1.0f, -1.0f}}) / 255.0,
                       false);
  m.register_parameter("b", torch::tensor({100.0f, -100.0f}), false);
  m.define(R"(
    def forward(self, img: Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False):
        f = img.float().mean(dim=[2, 3])
        if return_features:
            return f
        logits = torch.matmul(f, self.w)
        if not no_output_bias:
            logits = logits + self.b
        return torch.softmax(logits, dim=1)
  )");
  m.save(path);
}

TEST(FeatureExtractor, TorchScriptDetectorConvention) {
  TempFile file("detector.pt");
  save_detector(file.path.string());
  auto extractor = load_feature_extractor(file.path.string(), torch::kCPU);
  auto images = torch::zeros({2, 3, 4, 4}, torch::kByte);
  images[0][0].fill_(255);
  images[1][1].fill_(51);
  images[1][2].fill_(102);
  const auto f = extractor->features(images);
  EXPECT_EQ(f.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::allclose(f, torch::tensor({{255.0, 0.0, 0.0}, {0.0, 51.0, 102.0}},
                                               torch::kDouble)));
  // Probabilities without the output bias: softmax([1, 0]) and softmax([0.4, -0.2]).
  const auto p = extractor->class_probabilities(images);
  const auto expected = torch::softmax(
      torch::tensor({{1.0, 0.0}, {0.4, 0.2 - 0.4}}, torch::kDouble), 1);
  EXPECT_TRUE(torch::allclose(p, expected, 1e-6, 1e-7)) << p;
  EXPECT_NE(extractor->identity().find("sha256:"), std::string::npos);
}

TEST(FeatureExtractor, GrayscaleIsRepeatedToThreeChannels) {
  TempFile file("detector_gray.pt");
  save_detector(file.path.string());
  auto extractor = load_feature_extractor(file.path.string(), torch::kCPU);
  const auto gray = torch::full({1, 1, 2, 2}, 17, torch::kByte);
  EXPECT_TRUE(torch::allclose(extractor->features(gray),
                              torch::full({1, 3}, 17.0, torch::kDouble)));
}

TEST(FeatureExtractor, BadFilesAndOutputsAreErrorsNamingTheFile) {
  TempFile missing("missing.pt");
  EXPECT_THROW(load_feature_extractor(missing.path.string(), torch::kCPU), Error);
  TempFile junk("junk.pt");
  std::ofstream(junk.path) << "not torchscript";
  try {
    load_feature_extractor(junk.path.string(), torch::kCPU);
    ADD_FAILURE() << "a text file loaded as TorchScript";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(junk.path.string()), std::string::npos) << e.what();
  }
  // A module that returns one value per batch instead of one row per image.
  TempFile scalar("scalar.pt");
  torch::jit::Module m("Scalar");
  m.define(R"(
    def forward(self, img: Tensor):
        return img.float().sum().reshape([1, 1])
  )");
  m.save(scalar.path.string());
  auto extractor = load_feature_extractor(scalar.path.string(), torch::kCPU);
  EXPECT_THROW(extractor->features(torch::zeros({3, 3, 2, 2}, torch::kByte)), Error);
  EXPECT_THROW(extractor->features(torch::zeros({3, 3, 2, 2})), Error);  // not uint8
}

}  // namespace
}  // namespace scorch
