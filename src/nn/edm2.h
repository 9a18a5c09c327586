// EDM2's magnitude-preserving U-Net and its preconditioning with the learned
// uncertainty (logvar) head: Karras et al. 2024, "Analyzing and Improving the
// Training Dynamics of Diffusion Models" (Sec. 2-3, App. B; Figure 21;
// equation numbers below are the paper's), layer for layer as NVlabs/edm2
// training/networks_edm2.py defines UNet and Precond. Module and parameter
// names are that file's state_dict names (unet.enc.64x64_block0.conv_res0.weight,
// unet.emb_fourier.freqs, logvar_linear.weight, ...), so EDM2's weights load by name.
//
//   EDM2Precond net(EDM2Options().image_size(64).img_channels(3).label_dim(1000)
//                       .model_channels(192), make_sde(config));   // EDM2-S, 280,209,381
//                       parameters
//   auto [d, u] = net->denoise_with_logvar(x, sigma, labels);     // D(x; sigma), u(sigma)
//   auto s = score_fn(*net, *sde, /*continuous=*/true, x, t);     // a ScoreNet like any other
//
// No biases, no GroupNorm: every weight is an MPConv, normalised to unit
// magnitude per output channel at every use, and in training mode also
// overwritten by its normalised value before use ("forced weight
// normalization", Eq. 66). Activations keep unit magnitude through mp_silu,
// mp_sum and mp_cat. Scorch's conventions, as for the other networks: class
// labels are int64 indices with num_classes (= label_dim) the null class,
// which EDM2 writes as a zero one-hot row; the network does not map [0, 1]
// data to [-1, 1] (data.centered is EDM2's business: its data are centred).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/precond.h"
#include "nn/score_net.h"
#include "sde/sde.h"

namespace scorch {

// ---------------------------------------------------------------------------
// The magnitude-preserving operations (networks_edm2.py, same names).

// normalize: x / (eps + ||x|| sqrt(numel(norm) / numel(x))) with the norm over
// `dims` (empty: every dim but the first) taken in float32, so that each slice
// has unit root-mean-square; returned in x's dtype (float64 input: the norm in float64).
torch::Tensor mp_normalize(const torch::Tensor& x, at::IntArrayRef dims = {}, double eps = 1e-4);

// silu(x) / 0.596 (Eq. 81).
torch::Tensor mp_silu(const torch::Tensor& x);

// lerp(a, b, t) / sqrt((1 - t)^2 + t^2) (Eq. 88).
torch::Tensor mp_sum(const torch::Tensor& a, const torch::Tensor& b, double t = 0.5);

// Concatenation along dim 1 with weights that keep unit magnitude (Eq. 103):
// C = sqrt((Na + Nb) / ((1 - t)^2 + t^2)), [C (1 - t) / sqrt(Na) a, C t / sqrt(Nb) b].
torch::Tensor mp_cat(const torch::Tensor& a, const torch::Tensor& b, double t = 0.5);

// EDM2's resample with its default box filter [1, 1]: kDown is the 2x2 mean
// (the depthwise stride-2 convolution with 1/4 taps), kUp repeats each pixel
// 2x2 (the transposed convolution with taps 4 x 1/4). [B, C, H, W].
enum class EDM2Resample { kKeep, kDown, kUp };
torch::Tensor mp_resample(const torch::Tensor& x, EDM2Resample mode);

// ---------------------------------------------------------------------------
// MPFourier (Eq. 75): fixed random features sqrt(2) cos(2 pi (f x + p)),
// buffers freqs = 2 pi N(0, 1) bandwidth and phases = 2 pi U(0, 1) [channels].
class MPFourierImpl : public torch::nn::Module {
 public:
  MPFourierImpl(int64_t num_channels, double bandwidth = 1.0, torch::Device device = torch::kCPU);
  // x [B] -> [B, num_channels] in x's dtype (computed in float32).
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor freqs_, phases_;
};
TORCH_MODULE(MPFourier);

// MPConv (Eqs. 47, 66): weight [out, in] (kernel 0: a linear layer) or
// [out, in, k, k] (a convolution with same padding), N(0, 1) at init. Uses
// normalize(w) gain / sqrt(fan_in), cast to x's dtype. In training mode the
// stored weight is first overwritten with normalize(w) without gradient and
// the layer then uses normalize of the stored value, exactly as the reference
// (whose float32 weight aliases its own cast).
class MPConvImpl : public torch::nn::Module {
 public:
  MPConvImpl(int64_t in_channels, int64_t out_channels, int64_t kernel,
             torch::Device device = torch::kCPU);
  // x [B, in] or [B, in, H, W]; gain: a scalar tensor (a learned gain) or
  // undefined for 1. Returns [B, out] or [B, out, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& gain = {});
  int64_t out_channels() const { return out_channels_; }
  const torch::Tensor& weight() const { return weight_; }

 private:
  int64_t out_channels_;
  torch::Tensor weight_;
};
TORCH_MODULE(MPConv);

// ---------------------------------------------------------------------------
// Options of the U-Net and its preconditioning (UNet, Block and Precond
// arguments; EDM2's defaults).
struct EDM2Options {
  TORCH_ARG(int64_t, image_size) = 64;   // img_resolution (H = W)
  TORCH_ARG(int64_t, img_channels) = 3;  // 4 for SD-VAE latents
  TORCH_ARG(int64_t, label_dim) = 0;     // classes; 0 = unconditional
  TORCH_ARG(int64_t, model_channels) = 192;
  TORCH_ARG(std::vector<int64_t>, channel_mult) = {1, 2, 3, 4};
  TORCH_ARG(int64_t,
            channel_mult_noise) = 0;  // noise embedding width / model_channels; 0: channel_mult[0]
  TORCH_ARG(int64_t,
            channel_mult_emb) = 0;     // embedding width / model_channels; 0: max(channel_mult)
  TORCH_ARG(int64_t, num_blocks) = 3;  // residual blocks per level
  TORCH_ARG(std::vector<int64_t>, attn_resolutions) = {16, 8};  // sizes with self-attention
  TORCH_ARG(double, label_balance) = 0.5;   // noise embedding (0) vs class embedding (1)
  TORCH_ARG(double, concat_balance) = 0.5;  // skip connections (0) vs main path (1)
  TORCH_ARG(int64_t, channels_per_head) = 64;
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(double, res_balance) = 0.3;       // main branch (0) vs residual branch (1)
  TORCH_ARG(double, attn_balance) = 0.3;      // main branch (0) vs self-attention (1)
  TORCH_ARG(double, clip_act) = 256.0;        // block outputs clipped to +-clip_act; 0 = no clip
  TORCH_ARG(int64_t, logvar_channels) = 128;  // Precond: width of the uncertainty features
  TORCH_ARG(double, sigma_data) = 0.5;        // Precond: EDM's sd
  // Where the weights are created: kMeta builds the network without memory
  // (shapes and parameter counts only).
  TORCH_ARG(torch::Device, device) = torch::kCPU;
};

// Throws scorch::Error (naming the option) for options UNet cannot build: an
// image_size not divisible by 2^(levels - 1), widths that are not positive,
// attention widths not divisible by channels_per_head, balances outside [0, 1].
void check_edm2_options(const EDM2Options& options);

// Block (Figure 21): flavor enc | dec, resample keep | down | up, optional
// cosine self-attention with out_channels / channels_per_head heads.
class EDM2BlockImpl : public torch::nn::Module {
 public:
  EDM2BlockImpl(int64_t in_channels, int64_t out_channels, int64_t emb_channels, bool decoder,
                EDM2Resample resample, bool attention, const EDM2Options& options);
  // x [B, in, H, W], emb [B, emb_channels] -> [B, out, H', W'].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb);
  int64_t out_channels() const { return out_channels_; }

 private:
  torch::Tensor attention(const torch::Tensor& x);

  int64_t out_channels_;
  bool decoder_;
  EDM2Resample resample_;
  int64_t num_heads_;
  double dropout_, res_balance_, attn_balance_, clip_act_;
  torch::Tensor emb_gain_;
  MPConv conv_res0_{nullptr}, emb_linear_{nullptr}, conv_res1_{nullptr}, conv_skip_{nullptr},
      attn_qkv_{nullptr}, attn_proj_{nullptr};
};
TORCH_MODULE(EDM2Block);

// UNet: F(x; c_noise, labels). As a ScoreNet its time_cond is c_noise itself
// (EDM2Precond feeds ln(sigma) / 4).
class EDM2UNetImpl : public ScoreNetImpl {
 public:
  explicit EDM2UNetImpl(const EDM2Options& options);
  // x [B, img_channels, S, S]; c_noise [B]; class_labels [B] int64 in
  // [0, label_dim] (label_dim: the null class, a zero embedding) or
  // undefined (all null). Returns [B, img_channels, S, S].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c_noise,
                        const torch::Tensor& class_labels = {}) override;
  const EDM2Options& options() const { return options_; }

 private:
  // emb: mp_silu(mp_sum(emb_noise(fourier(c_noise)), emb_label(onehot sqrt(K)))), in
  // c_noise's dtype (float32 under autocast too). [B] -> [B, emb width].
  torch::Tensor embed(const torch::Tensor& c_noise, const torch::Tensor& class_labels);

  EDM2Options options_;
  torch::Tensor out_gain_;
  MPFourier emb_fourier_{nullptr};
  MPConv emb_noise_{nullptr}, emb_label_{nullptr}, enc_conv_{nullptr}, out_conv_{nullptr};
  std::vector<std::pair<std::string, EDM2Block>> enc_, dec_;  // in the reference's order
};
TORCH_MODULE(EDM2UNet);

// Precond: EDM's preconditioning with sd = sigma_data (nn/precond.h, kind
// edm: c_noise = ln(sigma) / 4) around the UNet, registered as "unet", plus
// the uncertainty head u(sigma) = logvar_linear(logvar_fourier(c_noise)), a
// 128 -> 1 MPConv on MPFourier(128) features (Eq. 21). As a
// PrecondScoreNetImpl it is a ScoreNet for the training SDE, and EDM's loss
// and the sigma-space samplers call its denoise() as for any preconditioned
// network. Shares `sde`.
class EDM2PrecondImpl : public PrecondScoreNetImpl {
 public:
  EDM2PrecondImpl(const EDM2Options& options, std::shared_ptr<const Sde> sde);

  // D(x; sigma) and u(sigma) in one call (Precond.forward with
  // return_logvar=True): x [B, img_channels, S, S], sigma [B] > 0, labels as
  // EDM2UNet. Returns denoised [B, C, S, S] in x's dtype and logvar [B] float32.
  struct Output {
    torch::Tensor denoised, logvar;
  };
  Output denoise_with_logvar(const torch::Tensor& x, const torch::Tensor& sigma,
                             const torch::Tensor& class_labels = {});
  // u(sigma): sigma [B] > 0 -> [B] float32.
  torch::Tensor logvar(const torch::Tensor& sigma);

  const EDM2Options& edm2_options() const { return options_; }
  EDM2UNetImpl& unet() { return *unet_; }

 private:
  EDM2Options options_;
  EDM2UNet unet_;
  MPFourier logvar_fourier_{nullptr};
  MPConv logvar_linear_{nullptr};
};
TORCH_MODULE(EDM2Precond);

}  // namespace scorch
