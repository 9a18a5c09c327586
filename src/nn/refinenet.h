// RefineNet building blocks of NCSN (Song & Ermon 2019, App. A: RefineNet
// (Lin et al. 2017) with dilated residual blocks and conditional instance
// normalization++) and NCSNv2 (Song & Ermon 2020, unconditional instance
// normalization++), named and shaped as score_sde_pytorch models/layers.py
// and models/normalization.py (RCUBlock, MSFBlock, CRPBlock, RefineBlock,
// ResidualBlock, ConvMeanPool, InstanceNorm2dPlus and their Cond* variants).
// One class per block serves both: num_classes > 0 selects the conditional
// variant (norms indexed by the noise level y, average-pooling CRP), 0 the
// unconditional one (no norms inside RefineBlock, max-pooling CRP).
//
// Dilated 3x3 convolutions are padded by their dilation, so they keep the
// spatial size, as in the NCSN and NCSNv2 repositories (ermongroup/ncsn,
// ermongroup/ncsnv2); score_sde_pytorch's port pads them by 1, which makes the
// residual and shortcut paths of a dilated block disagree in size.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "nn/layers.h"

namespace scorch {

// Instance normalization++ (Song & Ermon 2019, eq. 12 in App. B.1): with
// mu_c, s_c the per-channel spatial mean and std of x [B, C, H, W], m, v the
// mean and (unbiased) variance of mu over channels,
//   out = gamma_c ((x - mu_c) / sqrt(s_c^2 + 1e-5) + alpha_c (mu_c - m) / sqrt(v + 1e-5)) + beta_c.
// Unconditional (num_classes = 0): parameters alpha, gamma ~ N(1, 0.02), beta = 0
// [C]. Conditional: "embed" [num_classes, 3C] = (gamma | alpha | beta) per level
// y, gamma and alpha ~ N(1, 0.02), beta = 0.
class InstanceNormPlusImpl : public torch::nn::Module {
 public:
  InstanceNormPlusImpl(int64_t features, int64_t num_classes);
  // x [B, C, H, W]; y [B] int64 levels in [0, num_classes) (conditional only).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& y = {});

 private:
  int64_t features_;
  torch::Tensor alpha_, gamma_, beta_;
  torch::nn::Embedding embed_{nullptr};
};
TORCH_MODULE(InstanceNormPlus);

// Convolution then 2x2 mean pooling ([B, in, H, W] -> [B, out, H/2, W/2]; H, W even).
class ConvMeanPoolImpl : public torch::nn::Module {
 public:
  ConvMeanPoolImpl(int64_t in, int64_t out, int64_t kernel_size);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv_{nullptr};
};
TORCH_MODULE(ConvMeanPool);

enum class Resample { kNone, kDown };

// Pre-activation residual block: norm, act, conv1, norm, act, conv2, plus a
// shortcut (a convolution when the channels change or it resamples).
// kDown with dilation 1 halves the size (ConvMeanPool); with dilation > 1 the
// convolutions are dilated instead and the size is kept.
class RefineResidualBlockImpl : public torch::nn::Module {
 public:
  RefineResidualBlockImpl(int64_t in, int64_t out, Resample resample, int64_t dilation,
                          Activation act, int64_t num_classes);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& y = {});

 private:
  Activation act_;
  bool identity_shortcut_;
  InstanceNormPlus normalize1_{nullptr}, normalize2_{nullptr};
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, shortcut_{nullptr};
  ConvMeanPool conv2_pool_{nullptr}, shortcut_pool_{nullptr};
};
TORCH_MODULE(RefineResidualBlock);

// Residual conv units: n_blocks times x += (([norm,] act, conv) x n_stages)(x).
class RCUBlockImpl : public torch::nn::Module {
 public:
  RCUBlockImpl(int64_t features, int64_t n_blocks, int64_t n_stages, Activation act,
               int64_t num_classes);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& y = {});

 private:
  int64_t n_blocks_, n_stages_;
  Activation act_;
  std::vector<torch::nn::Conv2d> convs_;  // [block * n_stages + stage]
  std::vector<InstanceNormPlus> norms_;   // conditional only
};
TORCH_MODULE(RCUBlock);

// Multi-resolution fusion: sum over inputs of bilinear resizes (align_corners)
// to `shape` of conv3x3([norm](x_i)).
class MSFBlockImpl : public torch::nn::Module {
 public:
  MSFBlockImpl(const std::vector<int64_t>& in_planes, int64_t features, int64_t num_classes);
  torch::Tensor forward(const std::vector<torch::Tensor>& xs, const torch::Tensor& y,
                        at::IntArrayRef shape);

 private:
  int64_t features_;
  torch::nn::ModuleList convs_{nullptr}, norms_{nullptr};
};
TORCH_MODULE(MSFBlock);

// Chained residual pooling: x = act(x); path = x; n_stages times
// path = conv(pool5x5([norm](path))), x += path. Max pooling when
// unconditional, average pooling when conditional.
class CRPBlockImpl : public torch::nn::Module {
 public:
  CRPBlockImpl(int64_t features, int64_t n_stages, Activation act, int64_t num_classes);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& y = {});

 private:
  Activation act_;
  bool conditional_;
  torch::nn::ModuleList convs_{nullptr}, norms_{nullptr};
};
TORCH_MODULE(CRPBlock);

// RefineNet block: adapt each input with RCU(2, 2), fuse (MSF) when there are
// several, CRP(2), then RCU(3 if end else 1, 2).
class RefineBlockImpl : public torch::nn::Module {
 public:
  RefineBlockImpl(const std::vector<int64_t>& in_planes, int64_t features, Activation act,
                  int64_t num_classes, bool start, bool end);
  // xs: one [B, in_planes[i], H_i, W_i] per input; shape: the output's (H, W).
  torch::Tensor forward(const std::vector<torch::Tensor>& xs, const torch::Tensor& y,
                        at::IntArrayRef shape);

 private:
  torch::nn::ModuleList adapt_convs_{nullptr};
  RCUBlock output_convs_{nullptr};
  MSFBlock msf_{nullptr};
  CRPBlock crp_{nullptr};
};
TORCH_MODULE(RefineBlock);

}  // namespace scorch
