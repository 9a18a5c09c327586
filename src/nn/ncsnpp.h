// NCSN++ and DDPM++ (Song et al. 2021, "Score-Based Generative Modeling
// through SDEs", App. H): one U-Net class whose options select BigGAN or DDPM
// residual blocks, FIR resampling, progressive input/output pyramids, Fourier
// or sinusoidal noise embeddings. A line-by-line port of score_sde_pytorch
// models/ncsnpp.py; the reference's cifar10 configs give 62,758,787 trainable
// parameters (VE NCSN++ continuous) and 61,804,419 (VP DDPM++ continuous).
//
//   NCSNpp net(NCSNppOptions().nf(128).num_res_blocks(4));  // NCSN++ defaults
//   auto out = net->forward(x, sigma);  // x [B, 3, 32, 32], sigma [B]
#pragma once

#include "core/choices.h"
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "nn/embeddings.h"
#include "nn/layers.h"
#include "nn/resample.h"
#include "nn/score_net.h"

namespace scorch {


// Defaults are the reference's ve/cifar10_ncsnpp_continuous values.
struct NCSNppOptions {
  // Data.
  TORCH_ARG(int64_t, image_size) = 32;
  TORCH_ARG(int64_t, num_channels) = 3;
  // Input channels when more than the output's num_channels (0: num_channels),
  // e.g. num_channels + 2 for patch coordinates (nn/patch.h).
  TORCH_ARG(int64_t, in_channels) = 0;
  TORCH_ARG(bool, centered) = false;    // false: inputs in [0, 1] are mapped to 2x - 1
  TORCH_ARG(int64_t, num_classes) = 0;  // > 0: class embedding with a null class
  // Architecture.
  TORCH_ARG(int64_t, nf) = 128;
  TORCH_ARG(std::vector<int64_t>, ch_mult) = {1, 2, 2, 2};
  TORCH_ARG(int64_t, num_res_blocks) = 4;
  TORCH_ARG(std::vector<int64_t>, attn_resolutions) = {16};
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(bool, resamp_with_conv) = true;
  TORCH_ARG(bool, conditional) = true;  // time-conditional
  TORCH_ARG(bool, fir) = true;
  TORCH_ARG(std::vector<int64_t>, fir_kernel) = {1, 3, 3, 1};
  TORCH_ARG(bool, skip_rescale) = true;
  TORCH_ARG(ResBlockType, resblock_type) = ResBlockType::kBigGAN;
  TORCH_ARG(ProgressiveOutput, progressive) = ProgressiveOutput::kNone;
  TORCH_ARG(ProgressiveInput, progressive_input) = ProgressiveInput::kResidual;
  TORCH_ARG(CombineMethod, progressive_combine) = CombineMethod::kSum;
  TORCH_ARG(double, init_scale) = 0.0;
  TORCH_ARG(EmbeddingType, embedding_type) = EmbeddingType::kFourier;
  TORCH_ARG(double, fourier_scale) = 16.0;
  TORCH_ARG(Activation, nonlinearity) = Activation::kSwish;
  // Divide the output by sigma (VE). Fourier: sigma = time_cond; positional:
  // sigma = sigmas[long(time_cond)] from the buffer below.
  TORCH_ARG(bool, scale_by_sigma) = false;
  // The buffer "sigmas" = exp(linspace(ln sigma_max, ln sigma_min, num_scales))
  // (float64, as the reference registers it).
  TORCH_ARG(double, sigma_min) = 0.01;
  TORCH_ARG(double, sigma_max) = 50.0;
  TORCH_ARG(int64_t, num_scales) = 1000;
  // Residual and attention blocks (kBlocks) or attention blocks only
  // (kAttention) recompute their activations in backward (nn/checkpoint.h).
  TORCH_ARG(Checkpointing, checkpointing) = Checkpointing::kNone;
  // EDM's SongUNet conditioning (nn/precond.h sets it): the noise label is
  // embedded as given (Fourier features of c_noise, not of its log), and a
  // class label enters as Linear(num_classes -> noise-embedding width) of its
  // one-hot vector times sqrt(num_classes), added before the dense layers; the
  // null class is the zero vector. Parameter counts are EDM's.
  TORCH_ARG(bool, edm_conditioning) = false;
};

class NCSNppImpl : public ScoreNetImpl {
 public:
  // Throws scorch::Error for inconsistent options (e.g. an image size not
  // divisible by 2^(levels-1), channel counts GroupNorm cannot split).
  explicit NCSNppImpl(const NCSNppOptions& options);

  // x [B, num_channels, image_size, image_size]; time_cond [B]: sigma for
  // Fourier embeddings, the (float) time label for positional ones;
  // class_labels [B] int64 in [0, num_classes] or undefined (null class).
  // Returns [B, num_channels, image_size, image_size].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                        const torch::Tensor& class_labels = {}) override;

  const NCSNppOptions& options() const { return options_; }

 private:
  // Modules of one encoder level, in the reference's order.
  struct DownLevel {
    std::vector<ResBlock> blocks;
    std::vector<AttnBlock> attns;      // one per block where the level has attention
    ResBlock down_block;               // BigGAN blocks: resampling residual block
    Downsample down{nullptr};          // DDPM blocks: plain downsampling
    Combine combine{nullptr};          // progressive_input = input_skip
    Downsample pyramid_down{nullptr};  // progressive_input = residual
  };
  struct UpLevel {
    std::vector<ResBlock> blocks;  // num_res_blocks + 1, eating the skips
    AttnBlock attn{nullptr};
    GroupNormF32 pyramid_norm{nullptr};  // progressive output head
    torch::nn::Conv2d pyramid_conv{nullptr};
    Upsample pyramid_up{nullptr};  // progressive = residual, below the top
    ResBlock up_block;
    Upsample up{nullptr};
  };

  // Registers `module` as the next entry of all_modules (state-dict names
  // all_modules.<i>.*, as in the reference) and returns it.
  template <typename M>
  M add(M module);
  ResBlock make_res_block(int64_t in_ch, int64_t out_ch, bool up = false, bool down = false) const;
  AttnBlock make_attn_block(int64_t channels) const;
  torch::Tensor time_embedding(const torch::Tensor& time_cond, const torch::Tensor& class_labels,
                               int64_t batch);

  NCSNppOptions options_;
  torch::nn::ModuleList all_modules_;
  torch::Tensor sigmas_;
  GaussianFourierProjection fourier_{nullptr};
  torch::nn::Linear temb_dense_0_{nullptr}, temb_dense_1_{nullptr};
  torch::nn::Embedding class_embedding_{nullptr};
  torch::nn::Linear label_map_{nullptr};  // edm_conditioning
  torch::nn::Conv2d input_conv_{nullptr};
  std::vector<DownLevel> down_;
  ResBlock mid_block_0_, mid_block_1_;
  AttnBlock mid_attn_{nullptr};
  std::vector<UpLevel> up_;                 // from the lowest resolution up
  Downsample pyramid_downsample_{nullptr};  // input_skip: no parameters
  Upsample pyramid_upsample_{nullptr};      // output_skip: no parameters
  GroupNormF32 out_norm_{nullptr};
  torch::nn::Conv2d out_conv_{nullptr};
};
TORCH_MODULE(NCSNpp);

}  // namespace scorch
