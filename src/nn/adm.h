// The ADM U-Net of Dhariwal & Nichol 2021 ("Diffusion Models Beat GANs on
// Image Synthesis"), as openai/guided-diffusion guided_diffusion/unet.py
// UNetModel defines it: residual blocks with optional FiLM conditioning
// (use_scale_shift_norm) and residual up/down-sampling, multi-head attention
// at chosen downsampling rates (legacy or new q/k/v order), 1-D, 2-D or 3-D
// signals, and class conditioning. Parameter names are the reference's
// state_dict names (time_embed.0.weight, input_blocks.1.0.in_layers.2.weight,
// ...), so its weights load by name.
//
//   ADM net(ADMOptions().image_size(64).model_channels(192).num_res_blocks(3)
//               .attention_ds({2, 4, 8}).channel_mult({1, 2, 3, 4})
//               .num_head_channels(64).use_scale_shift_norm(true));
//   auto out = net->forward(x, 999 * t);  // x [B, 3, 64, 64]
//
// Departures, all Scorch conventions shared with the other networks: the class
// embedding "label_emb" has num_classes + 1 rows (the last is the null class
// of classifier-free guidance, used when labels are undefined), so a
// class-conditional model has 4 model_channels more parameters than the
// reference's; `centered`=false maps [0, 1] inputs to 2x - 1; scale_by_sigma
// divides the output by sigma (VE).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "nn/layers.h"
#include "nn/score_net.h"

namespace scorch {

// A layer of a TimestepEmbedSequential: forward(x, emb); layers that ignore
// the embedding (convolutions, attention, resampling) take it anyway.
// x [B, C, spatial...] -> [B, C', spatial'...].
class ADMLayerImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb) = 0;
};

struct ADMOptions {
  TORCH_ARG(int64_t, dims) = 2;          // 1: [B, C, L]; 2: [B, C, H, W]; 3: [B, C, D, H, W]
  TORCH_ARG(int64_t, image_size) = 32;   // spatial size (the last dimensions; for 3-D H = W)
  TORCH_ARG(int64_t, in_channels) = 3;
  TORCH_ARG(int64_t, out_channels) = 3;
  TORCH_ARG(int64_t, model_channels) = 128;
  TORCH_ARG(int64_t, num_res_blocks) = 2;
  // Downsampling rates with attention (guided-diffusion's UNetModel
  // attention_resolutions: 1 = full size, 2 = half, ...); its command-line
  // flag and Scorch's model.attn_resolutions give sizes, ds = image_size / size.
  TORCH_ARG(std::vector<int64_t>, attention_ds) = {2, 4};
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(std::vector<int64_t>, channel_mult) = {1, 2, 4, 8};
  TORCH_ARG(bool, conv_resample) = true;  // strided / post-upsampling 3x3 convolutions
  TORCH_ARG(int64_t, num_classes) = 0;    // 0: unconditional
  TORCH_ARG(int64_t, num_heads) = 1;
  TORCH_ARG(int64_t, num_head_channels) = -1;   // > 0: heads = channels / this (overrides num_heads)
  TORCH_ARG(int64_t, num_heads_upsample) = -1;  // -1: num_heads
  TORCH_ARG(bool, use_scale_shift_norm) = false;
  TORCH_ARG(bool, resblock_updown) = false;
  TORCH_ARG(bool, use_new_attention_order) = false;
  // Scorch conventions (see above).
  TORCH_ARG(bool, centered) = true;
  TORCH_ARG(bool, scale_by_sigma) = false;
  // With scale_by_sigma: empty when time_cond is sigma itself (VE
  // continuous), else the table time_cond indexes (VE discrete, level 0 = sigma_max).
  TORCH_ARG(std::vector<double>, sigmas) = {};
  // Flat inputs: when non-empty, x may also be [B, prod(flat_shape)] (vector
  // data, e.g. 1-D or 3-D signals stored as vectors); it is viewed as
  // [B, flat_shape...] = [B, in_channels, spatial...] and the output flattened back.
  TORCH_ARG(std::vector<int64_t>, flat_shape) = {};
  // Residual and attention blocks (kBlocks) or attention blocks only
  // (kAttention) recompute their activations in backward (nn/checkpoint.h).
  TORCH_ARG(Checkpointing, checkpointing) = Checkpointing::kNone;
};

// Throws scorch::Error (naming the option) for options UNetModel cannot build:
// dims outside 1..3, channel counts not divisible by GroupNorm's 32 groups,
// head counts that do not divide the channels, an image_size not divisible by
// 2^(levels - 1), or attention rates that are no level's.
void check_adm_options(const ADMOptions& options);

class ADMImpl : public ScoreNetImpl {
 public:
  explicit ADMImpl(const ADMOptions& options);

  // x [B, in_channels, spatial...] (or flat, see flat_shape); time_cond [B]
  // (fractional time steps allowed: 999 t for VP); class_labels [B] int64 in
  // [0, num_classes] or undefined. Returns [B, out_channels, spatial...].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                        const torch::Tensor& class_labels = {}) override;

  const ADMOptions& options() const { return options_; }

 private:
  class Stack;  // TimestepEmbedSequential
  torch::Tensor forward_signal(const torch::Tensor& x, const torch::Tensor& time_cond,
                               const torch::Tensor& class_labels);

  ADMOptions options_;
  torch::nn::Linear time_embed_0_{nullptr}, time_embed_2_{nullptr};
  torch::nn::Embedding label_emb_{nullptr};
  std::vector<std::shared_ptr<Stack>> input_blocks_, output_blocks_;
  std::shared_ptr<Stack> middle_block_;
  GroupNormF32 out_norm_{nullptr};
  std::shared_ptr<ADMLayerImpl> out_conv_;
  torch::Tensor sigmas_;
};
TORCH_MODULE(ADM);

// guided-diffusion's timestep_embedding: [cos(t f), sin(t f)] with
// f_i = 10000^(-i / (dim / 2)), i < dim / 2 (float32), a zero column for odd dim.
// t [B] (any float or integer dtype) -> [B, dim] float32.
torch::Tensor adm_timestep_embedding(const torch::Tensor& t, int64_t dim);

}  // namespace scorch
