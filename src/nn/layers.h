// Building blocks of the DDPM / DDPM++ / NCSN++ U-Nets, written after
// yang-song/score_sde_pytorch models/layers.py (DDPM's layers, after Ho et al.
// 2020 diffusion_tf/nn.py) and models/layerspp.py (Song et al. 2021, App. H).
//
//   auto block = ResnetBlockBigGAN(ResnetBlockBigGANOptions(128, 256).temb_dim(512));
//   auto y = block(x, temb);  // [B, 128, H, W] -> [B, 256, H, W]
//
// Parameter and child names follow the reference's state_dict names
// (GroupNorm_0, Conv_0, Dense_0, NIN_0, W, b, ...), so a score_sde checkpoint
// maps onto these modules without renaming.
#pragma once

#include "core/choices.h"
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace scorch {

// ---------------------------------------------------------------------------
// Nonlinearity (config model.nonlinearity: swish | relu | lrelu | elu).

// act(x); kLeakyReLU has slope 0.2 as in the reference's get_act.
torch::Tensor activate(const torch::Tensor& x, Activation act);

// ---------------------------------------------------------------------------
// Initialisation: JAX's variance_scaling(scale, "fan_avg", "uniform") as in
// layers.default_init, with fans from axis 1 (in) and 0 (out) times the
// receptive field: U(-b, b), b = sqrt(3 scale / ((fan_in + fan_out) / 2)).
// scale == 0 means 1e-10 (the reference's "zero" init that keeps gradients).
void default_init_(torch::Tensor weight, double scale = 1.0);

// nn.Conv2d with default_init weights and a zero bias (layers.ddpm_conv3x3 /
// ddpm_conv1x1). padding defaults to the "same" padding of the kernel.
torch::nn::Conv2d make_conv(int64_t in_ch, int64_t out_ch, int64_t kernel, double init_scale = 1.0,
                            int64_t stride = 1, int64_t padding = -1);
inline torch::nn::Conv2d conv3x3(int64_t in_ch, int64_t out_ch, double init_scale = 1.0) {
  return make_conv(in_ch, out_ch, 3, init_scale);
}
inline torch::nn::Conv2d conv1x1(int64_t in_ch, int64_t out_ch, double init_scale = 1.0) {
  return make_conv(in_ch, out_ch, 1, init_scale);
}

// nn.Linear with default_init weights and a zero bias.
torch::nn::Linear make_dense(int64_t in_features, int64_t out_features);

// ---------------------------------------------------------------------------
// GroupNorm (eps 1e-6). The group count differs between the two families:
// layerspp (DDPM++, NCSN++) uses min(C/4, 32); Ho's DDPM (layers.py) uses 32
// for every width, so C must be a multiple of 32 there.
enum class GroupRule { kQuarterUpTo32, kFixed32 };

// torch::nn::GroupNorm whose statistics are always computed in float32: under
// bfloat16/float16 autocast the input is upcast and the output returned in
// the input's dtype (LibTorch's CPU autocast does not cover group_norm; on
// CUDA it would run in float32 anyway). Same parameters (weight, bias).
class GroupNormF32Impl : public torch::nn::GroupNormImpl {
 public:
  using torch::nn::GroupNormImpl::GroupNormImpl;
  torch::Tensor forward(const torch::Tensor& x);
};
TORCH_MODULE(GroupNormF32);

// REQUIRES: channels >= 4 (kQuarterUpTo32) or channels % 32 == 0 (kFixed32);
// otherwise throws scorch::Error naming the channel count.
int64_t group_count(int64_t channels, GroupRule rule);
GroupNormF32 make_group_norm(int64_t channels, GroupRule rule);

// ---------------------------------------------------------------------------
// NIN: a 1x1 "network in network" layer, y[b,:,h,w] = x[b,:,h,w] W + b.
// Parameters W [in, out] (default_init with init_scale, 0.1 by default) and b [out].
class NINImpl : public torch::nn::Module {
 public:
  NINImpl(int64_t in_dim, int64_t num_units, double init_scale = 0.1);
  // x [B, in, H, W] -> [B, out, H, W]
  torch::Tensor forward(const torch::Tensor& x);
  const torch::Tensor& weight() const { return w_; }  // W [in, out]
  const torch::Tensor& bias() const { return b_; }    // b [out]

 private:
  torch::Tensor w_, b_;
};
TORCH_MODULE(NIN);

// ---------------------------------------------------------------------------
// One-head self-attention over the H*W positions: q, k, v = NIN(GroupNorm(x)),
// h = NIN_3(softmax(q^T k / sqrt(C)) v), out = x + h, or (x + h)/sqrt(2) with
// skip_rescale. DDPM's AttnBlock is {kFixed32, skip_rescale false, init 0};
// layerspp's AttnBlockpp is {kQuarterUpTo32, skip_rescale, init_scale}.
// On LibTorch >= 2.1 q, k, v come from one matmul against [W_0 W_1 W_2] and
// the attention is SDPA (compat::attention); 1.13 keeps three NINs, bmm and a
// float32 softmax. The parameters are the same either way.
struct AttnBlockOptions {
  explicit AttnBlockOptions(int64_t channels) : channels_(channels) {}
  TORCH_ARG(int64_t, channels);
  TORCH_ARG(GroupRule, group_rule) = GroupRule::kQuarterUpTo32;
  TORCH_ARG(bool, skip_rescale) = false;
  TORCH_ARG(double, init_scale) = 0.0;  // of NIN_3 (0 -> 1e-10)
};

class AttnBlockImpl : public torch::nn::Module {
 public:
  explicit AttnBlockImpl(const AttnBlockOptions& options);
  // x [B, C, H, W] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x);

 private:
  AttnBlockOptions options_;
  GroupNormF32 norm_{nullptr};
  NIN q_{nullptr}, k_{nullptr}, v_{nullptr}, out_{nullptr};
};
TORCH_MODULE(AttnBlock);

// ---------------------------------------------------------------------------
// Residual blocks conditioned on the time embedding: every block adds
// Dense_0(act(temb)) per channel after Conv_0. Both kinds share this interface
// so a U-Net can hold either.
class ResBlockImpl : public torch::nn::Module {
 public:
  // x [B, in_ch, H, W], temb [B, temb_dim] or undefined (unconditional)
  // -> [B, out_ch, H', W'] (H' = 2H when up, H/2 when down, else H).
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb) = 0;
};
using ResBlock = std::shared_ptr<ResBlockImpl>;

// DDPM's ResnetBlock (layers.ResnetBlockDDPM) and DDPM++'s ResnetBlockDDPMpp:
//   h = Conv_1(Dropout(act(GN_1(Conv_0(act(GN_0(x))) + Dense_0(act(temb))))))
//   out = shortcut(x) + h   (or / sqrt(2) with skip_rescale)
// shortcut: identity, NIN_0 when in != out, or Conv_2 (3x3) with conv_shortcut.
// Conv_1 starts near zero (init_scale 0 -> 1e-10).
struct ResnetBlockDDPMOptions {
  ResnetBlockDDPMOptions(int64_t in_ch, int64_t out_ch) : in_ch_(in_ch), out_ch_(out_ch) {}
  TORCH_ARG(int64_t, in_ch);
  TORCH_ARG(int64_t, out_ch);
  TORCH_ARG(int64_t, temb_dim) = 0;  // 0: no time conditioning (no Dense_0)
  TORCH_ARG(bool, conv_shortcut) = false;
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(bool, skip_rescale) = false;
  TORCH_ARG(double, init_scale) = 0.0;
  TORCH_ARG(GroupRule, group_rule) = GroupRule::kQuarterUpTo32;
  TORCH_ARG(Activation, act) = Activation::kSwish;
};

class ResnetBlockDDPMImpl : public ResBlockImpl {
 public:
  explicit ResnetBlockDDPMImpl(const ResnetBlockDDPMOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb) override;

 private:
  ResnetBlockDDPMOptions options_;
  GroupNormF32 norm_0_{nullptr}, norm_1_{nullptr};
  torch::nn::Conv2d conv_0_{nullptr}, conv_1_{nullptr}, conv_shortcut_{nullptr};
  torch::nn::Linear dense_temb_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  NIN nin_shortcut_{nullptr};
};
TORCH_MODULE(ResnetBlockDDPM);

// BigGAN-style block of NCSN++/DDPM++ (layerspp.ResnetBlockBigGANpp): like the
// DDPM block, but it resamples both paths after GN_0+act when up or down
// (FIR with fir_kernel, or nearest / 2x2 mean without fir), and its shortcut
// is a 1x1 conv Conv_2 whenever in != out or it resamples.
struct ResnetBlockBigGANOptions {
  ResnetBlockBigGANOptions(int64_t in_ch, int64_t out_ch) : in_ch_(in_ch), out_ch_(out_ch) {}
  TORCH_ARG(int64_t, in_ch);
  TORCH_ARG(int64_t, out_ch);
  TORCH_ARG(int64_t, temb_dim) = 0;
  TORCH_ARG(bool, up) = false;
  TORCH_ARG(bool, down) = false;
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(bool, fir) = false;
  TORCH_ARG(std::vector<int64_t>, fir_kernel) = {1, 3, 3, 1};
  TORCH_ARG(bool, skip_rescale) = true;
  TORCH_ARG(double, init_scale) = 0.0;
  TORCH_ARG(Activation, act) = Activation::kSwish;
};

class ResnetBlockBigGANImpl : public ResBlockImpl {
 public:
  explicit ResnetBlockBigGANImpl(const ResnetBlockBigGANOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb) override;

 private:
  torch::Tensor resample(const torch::Tensor& x) const;

  ResnetBlockBigGANOptions options_;
  GroupNormF32 norm_0_{nullptr}, norm_1_{nullptr};
  torch::nn::Conv2d conv_0_{nullptr}, conv_1_{nullptr}, conv_shortcut_{nullptr};
  torch::nn::Linear dense_temb_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(ResnetBlockBigGAN);

// block(x, temb) and block(x), recomputed in backward instead of storing
// their activations when `checkpointed` (model.checkpointing, nn/checkpoint.h).
torch::Tensor run_res_block(const ResBlock& block, const torch::Tensor& x,
                            const torch::Tensor& temb, bool checkpointed);
torch::Tensor run_attn_block(const AttnBlock& block, const torch::Tensor& x, bool checkpointed);

// ---------------------------------------------------------------------------
// layerspp.Combine: merges the input pyramid into the U-Net's features,
// Conv_0 (1x1, dim1 -> dim2) then sum, or concatenation along channels.

class CombineImpl : public torch::nn::Module {
 public:
  CombineImpl(int64_t dim1, int64_t dim2, CombineMethod method);
  // x [B, dim1, H, W], y [B, dim2, H, W] -> [B, dim2 or 2 dim2, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& y);

 private:
  CombineMethod method_;
  torch::nn::Conv2d conv_{nullptr};
};
TORCH_MODULE(Combine);

}  // namespace scorch
