// Up- and down-sampling of image batches: StyleGAN2's FIR resampling
// (upfirdn2d: zero-insert upsample, pad, FIR filter, decimate), ported from
// score_sde_pytorch models/up_or_down_sampling.py and the pure-PyTorch
// upfirdn2d_native of op/upfirdn2d.py with LibTorch ops (no custom kernels),
// plus the Upsample / Downsample modules of layers.py and layerspp.py.
//
//   auto y = upsample_2d(x, {1, 3, 3, 1});   // [B, C, H, W] -> [B, C, 2H, 2W]
//   auto z = downsample_2d(y, {1, 3, 3, 1}); // back to [B, C, H, W]
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace scorch {

// The 2-D FIR kernel of _setup_kernel: outer(k, k) / sum(outer(k, k)) * gain,
// [K, K] float32 on `device`. REQUIRES: taps non-empty with a non-zero sum.
torch::Tensor make_fir_kernel(const std::vector<int64_t>& taps, double gain,
                              const torch::Device& device = torch::kCPU);

// upfirdn2d(x, kernel, up, down, pad0, pad1), the same pads on both axes:
//   1. insert up-1 zeros after every pixel (H -> H*up),
//   2. pad pad0 before and pad1 after (negative pads crop),
//   3. convolve (true convolution, i.e. correlate with the flipped kernel),
//   4. keep every down-th sample.
// x [B, C, H, W], kernel [K, K] -> [B, C, (H*up + pad0 + pad1 - K) / down + 1, ...].
torch::Tensor upfirdn2d(const torch::Tensor& x, const torch::Tensor& kernel, int64_t up,
                        int64_t down, int64_t pad0, int64_t pad1);

// FIR upsampling by `factor` (a constant image stays constant times gain).
// [B, C, H, W] -> [B, C, H*factor, W*factor]
torch::Tensor upsample_2d(const torch::Tensor& x, const std::vector<int64_t>& taps,
                          int64_t factor = 2, double gain = 1.0);

// FIR downsampling by `factor`. REQUIRES: H, W divisible by factor.
// [B, C, H, W] -> [B, C, H/factor, W/factor]
torch::Tensor downsample_2d(const torch::Tensor& x, const std::vector<int64_t>& taps,
                            int64_t factor = 2, double gain = 1.0);

// Fused FIR upsample + conv (StyleGAN2 upsample_conv_2d): a stride-`factor`
// transposed convolution with the flipped weight, then the FIR filter.
// w [out, in, k, k] with odd k. [B, in, H, W] -> [B, out, H*factor, W*factor].
// Note: the PyTorch reference fails on this path (a negative-step slice and a
// 4-element stride); this follows the StyleGAN2 / JAX semantics it ports.
torch::Tensor upsample_conv_2d(const torch::Tensor& x, const torch::Tensor& w,
                               const std::vector<int64_t>& taps, int64_t factor = 2,
                               double gain = 1.0);

// Fused FIR filter + stride-`factor` conv (StyleGAN2 conv_downsample_2d).
// w [out, in, k, k]. [B, in, H, W] -> [B, out, H/factor, W/factor].
torch::Tensor conv_downsample_2d(const torch::Tensor& x, const torch::Tensor& w,
                                 const std::vector<int64_t>& taps, int64_t factor = 2,
                                 double gain = 1.0);

// Nearest-neighbour upsampling and factor x factor mean pooling.
torch::Tensor naive_upsample_2d(const torch::Tensor& x, int64_t factor = 2);
torch::Tensor naive_downsample_2d(const torch::Tensor& x, int64_t factor = 2);

// ---------------------------------------------------------------------------
// up_or_down_sampling.Conv2d: a kxk convolution with parameters `weight`
// [out, in, k, k] (default_init) and `bias` [out] (zeros), optionally fused
// with FIR upsampling or downsampling.
struct FirConv2dOptions {
  FirConv2dOptions(int64_t in_ch, int64_t out_ch, int64_t kernel)
      : in_ch_(in_ch), out_ch_(out_ch), kernel_(kernel) {}
  TORCH_ARG(int64_t, in_ch);
  TORCH_ARG(int64_t, out_ch);
  TORCH_ARG(int64_t, kernel);  // odd
  TORCH_ARG(bool, up) = false;
  TORCH_ARG(bool, down) = false;
  TORCH_ARG(std::vector<int64_t>, resample_kernel) = {1, 3, 3, 1};
};

class FirConv2dImpl : public torch::nn::Module {
 public:
  explicit FirConv2dImpl(const FirConv2dOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  FirConv2dOptions options_;
  torch::Tensor weight_, bias_;
};
TORCH_MODULE(FirConv2d);

// ---------------------------------------------------------------------------
// layerspp.Upsample / Downsample (DDPM's layers.Upsample / Downsample are the
// fir=false case). Children: Conv_0 (nearest/strided path with conv) or
// Conv2d_0 (FIR path with conv); no parameters without conv.
//   Upsample:   fir ? (conv ? FIR-upsample-conv : upsample_2d)
//                   : nearest x2, then Conv_0 3x3 if conv.
//   Downsample: fir ? (conv ? FIR-conv-downsample : downsample_2d)
//                   : conv ? pad (0,1,0,1) + Conv_0 3x3 stride 2 ("SAME") : avg-pool 2.
struct ResampleOptions {
  explicit ResampleOptions(int64_t in_ch) : in_ch_(in_ch), out_ch_(in_ch) {}
  TORCH_ARG(int64_t, in_ch);
  TORCH_ARG(int64_t, out_ch);
  TORCH_ARG(bool, with_conv) = false;
  TORCH_ARG(bool, fir) = false;
  TORCH_ARG(std::vector<int64_t>, fir_kernel) = {1, 3, 3, 1};
};

class UpsampleImpl : public torch::nn::Module {
 public:
  explicit UpsampleImpl(const ResampleOptions& options);
  // [B, in_ch, H, W] -> [B, out_ch (in_ch without conv), 2H, 2W]
  torch::Tensor forward(const torch::Tensor& x);

 private:
  ResampleOptions options_;
  torch::nn::Conv2d conv_{nullptr};
  FirConv2d fir_conv_{nullptr};
};
TORCH_MODULE(Upsample);

class DownsampleImpl : public torch::nn::Module {
 public:
  explicit DownsampleImpl(const ResampleOptions& options);
  // [B, in_ch, H, W] -> [B, out_ch (in_ch without conv), H/2, W/2]
  torch::Tensor forward(const torch::Tensor& x);

 private:
  ResampleOptions options_;
  torch::nn::Conv2d conv_{nullptr};
  FirConv2d fir_conv_{nullptr};
};
TORCH_MODULE(Downsample);

}  // namespace scorch
