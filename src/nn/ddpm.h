// DDPM's U-Net (Ho et al. 2020, diffusion_tf/models/unet.py) as ported by
// score_sde_pytorch models/ddpm.py: DDPM residual blocks and attention with
// 32-group GroupNorm, sinusoidal time embedding, nearest/strided-conv
// resampling. Unlike Ho's original it has one attention block per decoder
// level (not per block): 35,218,947 parameters for the cifar10 config.
//
//   DDPM net(DDPMOptions().nf(128).num_res_blocks(2));
//   auto eps = net->forward(x, labels);  // x [B, 3, 32, 32], labels [B]
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "nn/layers.h"
#include "nn/resample.h"
#include "nn/score_net.h"

namespace scorch {

// Defaults are the reference's vp/ddpm/cifar10 values.
struct DDPMOptions {
  TORCH_ARG(int64_t, image_size) = 32;
  TORCH_ARG(int64_t, num_channels) = 3;
  // Input channels when more than the output's num_channels (0: num_channels),
  // e.g. num_channels + 2 for patch coordinates (nn/patch.h).
  TORCH_ARG(int64_t, in_channels) = 0;
  TORCH_ARG(bool, centered) = true;     // false: inputs in [0, 1] are mapped to 2x - 1
  TORCH_ARG(int64_t, num_classes) = 0;  // > 0: class embedding with a null class
  TORCH_ARG(int64_t, nf) = 128;         // REQUIRES: nf * ch_mult[i] multiples of 32
  TORCH_ARG(std::vector<int64_t>, ch_mult) = {1, 2, 2, 2};
  TORCH_ARG(int64_t, num_res_blocks) = 2;
  TORCH_ARG(std::vector<int64_t>, attn_resolutions) = {16};
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(bool, resamp_with_conv) = true;
  TORCH_ARG(bool, conditional) = true;
  TORCH_ARG(Activation, nonlinearity) = Activation::kSwish;
  // Divide the output by sigmas[long(time_cond)] (VE with discrete labels).
  TORCH_ARG(bool, scale_by_sigma) = false;
  TORCH_ARG(double, sigma_min) = 0.01;  // the float64 buffer "sigmas", as in NCSN++
  TORCH_ARG(double, sigma_max) = 50.0;
  TORCH_ARG(int64_t, num_scales) = 1000;
  // Residual and attention blocks (kBlocks) or attention blocks only
  // (kAttention) recompute their activations in backward (nn/checkpoint.h).
  TORCH_ARG(Checkpointing, checkpointing) = Checkpointing::kNone;
};

class DDPMImpl : public ScoreNetImpl {
 public:
  // Throws scorch::Error for inconsistent options.
  explicit DDPMImpl(const DDPMOptions& options);

  // x [B, num_channels, image_size, image_size]; time_cond [B] (time labels,
  // fed to the sinusoidal embedding); class_labels [B] int64 or undefined.
  // Returns [B, num_channels, image_size, image_size].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                        const torch::Tensor& class_labels = {}) override;

  const DDPMOptions& options() const { return options_; }

 private:
  struct Level {
    std::vector<ResBlock> down_blocks;
    std::vector<AttnBlock> down_attns;  // one per block where the level has attention
    Downsample down{nullptr};           // all levels but the last
    std::vector<ResBlock> up_blocks;    // num_res_blocks + 1
    AttnBlock up_attn{nullptr};
    Upsample up{nullptr};  // all levels but the first
  };

  template <typename M>
  M add(M module);
  ResBlock make_res_block(int64_t in_ch, int64_t out_ch) const;
  AttnBlock make_attn_block(int64_t channels) const;

  DDPMOptions options_;
  torch::nn::ModuleList all_modules_;
  torch::Tensor sigmas_;
  torch::nn::Linear temb_dense_0_{nullptr}, temb_dense_1_{nullptr};
  torch::nn::Embedding class_embedding_{nullptr};
  torch::nn::Conv2d input_conv_{nullptr};
  std::vector<Level> levels_;
  ResBlock mid_block_0_, mid_block_1_;
  AttnBlock mid_attn_{nullptr};
  GroupNormF32 out_norm_{nullptr};
  torch::nn::Conv2d out_conv_{nullptr};
};
TORCH_MODULE(DDPM);

}  // namespace scorch
