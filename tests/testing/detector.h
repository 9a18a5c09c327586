// A small TorchScript feature extractor with the StyleGAN2-ADA Inception
// calling convention, made by the tests: features are the three channel means
// and the mean square of the image on the [0, 255] scale; class
// probabilities are the softmax of the channel means / 64. features_of()
// computes the same features here, independently of the binary.
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#include <string>

namespace scorch::testing {

inline void save_detector(const std::string& path) {
  torch::jit::Module m("Detector");
  m.define(R"(
    def forward(self, img: Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False):
        x = img.float()
        f = torch.cat([x.mean(dim=[2, 3]), (x * x).mean(dim=[1, 2, 3]).unsqueeze(1) / 255.0], 1)
        if return_features:
            return f
        return torch.softmax(f[:, 0:3] / 64.0, dim=1)
  )");
  m.save(path);
}

// images: uint8 [N, H, W, C]. Returns float64 [N, 4].
inline torch::Tensor features_of(const torch::Tensor& images_nhwc) {
  const auto x = images_nhwc.permute({0, 3, 1, 2}).to(torch::kDouble);
  return torch::cat({x.mean({2, 3}), (x * x).mean({1, 2, 3}).unsqueeze(1) / 255.0}, 1);
}

}  // namespace scorch::testing
