// NCSN (Song & Ermon 2019, "Generative Modeling by Estimating Gradients of the
// Data Distribution": a RefineNet with dilated residual blocks and
// conditional instance normalization++ indexed by the noise level) and NCSNv2
// (Song & Ermon 2020, "Improved Techniques for Training Score-Based Generative
// Models": unconditional instance normalization++ and the output divided by
// sigma_y), as score_sde_pytorch models/ncsnv2.py defines them (model names
// ncsn, ncsnv2_64, ncsnv2_128, ncsnv2_256). The reference's cifar10 configs
// give 30,117,635 (configs/ve/ncsn/cifar10.py) and 29,694,083
// (configs/ve/ncsnv2/cifar10.py) parameters. See refinenet.h for where the
// padding of dilated convolutions departs from the PyTorch port.
//
//   NCSN net(NCSNOptions().variant(NCSNVariant::kV2_64).num_scales(232).sigma_max(50));
//   auto out = net->forward(x, levels);  // x [B, 3, 32, 32], levels [B] int64 (0 = sigma_max)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "nn/refinenet.h"
#include "nn/score_net.h"

namespace scorch {

// kV1: NCSN (conditional norms); kV2_*: NCSNv2 for images below 96 px, up to
// 128 px and up to 256 px (4, 5 and 6 levels).
enum class NCSNVariant { kV1, kV2_64, kV2_128, kV2_256 };

// Defaults are the reference's ve/ncsnv2/cifar10 values.
struct NCSNOptions {
  TORCH_ARG(NCSNVariant, variant) = NCSNVariant::kV2_64;
  TORCH_ARG(int64_t, image_size) = 32;
  TORCH_ARG(int64_t, num_channels) = 3;
  TORCH_ARG(bool, centered) = false;  // false: inputs in [0, 1] are mapped to 2x - 1
  TORCH_ARG(int64_t, nf) = 128;
  TORCH_ARG(Activation, nonlinearity) = Activation::kELU;
  // Noise levels sigmas = exp(linspace(ln sigma_max, ln sigma_min, num_scales))
  // (the "sigmas" buffer of NCSNv2, float64); time_cond indexes them, 0 = sigma_max.
  TORCH_ARG(double, sigma_min) = 0.01;
  TORCH_ARG(double, sigma_max) = 50.0;
  TORCH_ARG(int64_t, num_scales) = 232;
  // kBlocks: the residual blocks and RefineNet blocks recompute their
  // activations in backward (nn/checkpoint.h). NCSN has no attention.
  TORCH_ARG(Checkpointing, checkpointing) = Checkpointing::kNone;
};

class NCSNImpl : public ScoreNetImpl {
 public:
  // Throws scorch::Error for an image size the variant cannot take (v1 and
  // v2_64: below 96 px; v2_128: 96 to 128; v2_256: 129 to 256; divisible by
  // the downsampling factor).
  explicit NCSNImpl(const NCSNOptions& options);

  // x [B, num_channels, image_size, image_size]; time_cond [B] noise-level
  // indices in [0, num_scales) (any dtype; converted to int64); class_labels
  // must be undefined (NCSN is unconditional). Returns x's shape: the score
  // itself for v2 (divided by sigma), the raw output for v1.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                        const torch::Tensor& class_labels = {}) override;

  const NCSNOptions& options() const { return options_; }

 private:
  struct Stage {
    std::string name;  // res1, res2, ...
    RefineResidualBlock first{nullptr}, second{nullptr};
  };
  NCSNOptions options_;
  int64_t num_classes_ = 0;  // norms' levels: num_scales for v1, 0 (unconditional) for v2
  torch::nn::Conv2d begin_conv_{nullptr}, end_conv_{nullptr};
  InstanceNormPlus normalizer_{nullptr};
  std::vector<Stage> stages_;          // shallow to deep
  std::vector<RefineBlock> refines_;   // refines_[k] refines stages_[k]
  torch::Tensor sigmas_;               // [num_scales] float64 (v2)
};
TORCH_MODULE(NCSN);

}  // namespace scorch
