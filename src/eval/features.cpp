// TorchScript feature extractor (see features.h).
#include "eval/features.h"

#include <filesystem>

#include "core/error.h"
#include "eval/classifier.h"
#include "data/checksum.h"

namespace scorch {
namespace {

class TorchScriptExtractor : public FeatureExtractor {
 public:
  TorchScriptExtractor(const std::string& path, const torch::Device& device)
      : path_(path), device_(device) {
    SCORCH_CHECK(std::filesystem::is_regular_file(path), "eval.feature_extractor '", path,
                 "' is not a file; give a TorchScript file such as StyleGAN2-ADA's "
                 "inception-2015-12-05.pt");
    try {
      module_ = torch::jit::load(path, device);
    } catch (const std::exception& e) {
      std::string why = e.what();
      fail("eval.feature_extractor '" + path + "' is not a loadable TorchScript file (" +
           why.substr(0, why.find('\n')) + ")");
    }
    module_.eval();
    SCORCH_CHECK(module_.find_method("forward").has_value(), "eval.feature_extractor '", path,
                 "' has no forward method");
    for (const auto& arg : module_.get_method("forward").function().getSchema().arguments())
      arg_names_.push_back(arg.name());
    identity_ = std::filesystem::path(path).filename().string() + " sha256:" + sha256_file(path);
  }

  torch::Tensor features(const torch::Tensor& images) override {
    return run(images, {{"return_features", true}});
  }
  torch::Tensor class_probabilities(const torch::Tensor& images) override {
    return run(images, {{"return_features", false}, {"no_output_bias", true}});
  }
  std::string identity() const override { return identity_; }

 private:
  torch::Tensor run(const torch::Tensor& images, const std::vector<std::pair<std::string, bool>>& flags) {
    SCORCH_CHECK(images.dim() == 4 && images.scalar_type() == torch::kByte,
                 "feature extraction takes uint8 [N, C, H, W] images, got ", images.sizes(), " ",
                 images.scalar_type());
    torch::NoGradGuard no_grad;
    auto x = images.to(device_);
    if (x.size(1) == 1) x = x.repeat({1, 3, 1, 1});  // grayscale: R = G = B
    std::unordered_map<std::string, c10::IValue> kwargs;
    for (const auto& [name, value] : flags)
      if (std::find(arg_names_.begin(), arg_names_.end(), name) != arg_names_.end())
        kwargs[name] = value;
    c10::IValue out;
    try {
      out = module_.get_method("forward")({x}, kwargs);
    } catch (const std::exception& e) {
      std::string why = e.what();
      fail("eval.feature_extractor '" + path_ + "' failed on images of shape " +
           c10::str(x.sizes()) + ": " + why.substr(0, why.find('\n')));
    }
    SCORCH_CHECK(out.isTensor() && out.toTensor().dim() == 2 &&
                     out.toTensor().size(0) == images.size(0),
                 "eval.feature_extractor '", path_,
                 "' should return one row per image ([N, d]); got ",
                 out.isTensor() ? c10::str(out.toTensor().sizes()) : out.tagKind());
    return out.toTensor().to(torch::kCPU, torch::kDouble);
  }

  std::string path_;
  torch::Device device_;
  torch::jit::Module module_;
  std::vector<std::string> arg_names_;
  std::string identity_;
};

}  // namespace

std::unique_ptr<FeatureExtractor> load_feature_extractor(const std::string& path,
                                                         const torch::Device& device) {
  if (is_classifier_checkpoint(path)) return load_classifier_extractor(path, device);
  return std::make_unique<TorchScriptExtractor>(path, device);
}

}  // namespace scorch
