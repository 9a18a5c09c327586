// U-Net building blocks of DDPM / DDPM++ / NCSN++ (see layers.h), after
// score_sde_pytorch models/layers.py and models/layerspp.py.
#include "nn/layers.h"

#include <algorithm>
#include <cmath>

#include "core/compat.h"
#include "core/error.h"
#include "nn/checkpoint.h"
#include "nn/resample.h"

namespace scorch {
namespace {

// (x + h) / sqrt(2) with skip_rescale, else x + h (layerspp's residual merge).
torch::Tensor merge_residual(const torch::Tensor& x, const torch::Tensor& h, bool skip_rescale) {
  return skip_rescale ? (x + h) / std::sqrt(2.0) : x + h;
}

}  // namespace

torch::Tensor activate(const torch::Tensor& x, Activation act) {
  switch (act) {
    case Activation::kSwish:
      return torch::silu(x);
    case Activation::kReLU:
      return torch::relu(x);
    case Activation::kLeakyReLU:
      return torch::leaky_relu(x, 0.2);
    case Activation::kELU:
      return torch::elu(x);
  }
  TORCH_CHECK(false, "unknown activation");
}

void default_init_(torch::Tensor weight, double scale) {
  TORCH_CHECK(weight.dim() >= 2, "default_init_ needs a weight with >= 2 dims");
  if (scale == 0.0) scale = 1e-10;
  const double receptive = static_cast<double>(weight.numel()) / weight.size(0) / weight.size(1);
  const double fan_in = weight.size(1) * receptive;
  const double fan_out = weight.size(0) * receptive;
  const double variance = scale / ((fan_in + fan_out) / 2.0);
  const double bound = std::sqrt(3.0 * variance);
  torch::NoGradGuard no_grad;
  weight.uniform_(-bound, bound);
}

torch::nn::Conv2d make_conv(int64_t in_ch, int64_t out_ch, int64_t kernel, double init_scale,
                            int64_t stride, int64_t padding) {
  if (padding < 0) padding = kernel / 2;
  torch::nn::Conv2d conv(
      torch::nn::Conv2dOptions(in_ch, out_ch, kernel).stride(stride).padding(padding).bias(true));
  default_init_(conv->weight, init_scale);
  torch::NoGradGuard no_grad;
  conv->bias.zero_();
  return conv;
}

torch::nn::Linear make_dense(int64_t in_features, int64_t out_features) {
  torch::nn::Linear dense(in_features, out_features);
  default_init_(dense->weight);
  torch::NoGradGuard no_grad;
  dense->bias.zero_();
  return dense;
}

int64_t group_count(int64_t channels, GroupRule rule) {
  if (rule == GroupRule::kFixed32) {
    SCORCH_CHECK(channels % 32 == 0,
                 "DDPM's GroupNorm uses 32 groups, so every channel count "
                 "must be a multiple of 32; got ",
                 channels, " (raise model.nf)");
    return 32;
  }
  SCORCH_CHECK(channels >= 4, "GroupNorm with min(C/4, 32) groups needs >= 4 channels; got ",
               channels, " (raise model.nf)");
  const int64_t groups = std::min<int64_t>(channels / 4, 32);
  SCORCH_CHECK(channels % groups == 0, "GroupNorm: ", channels,
               " channels do not split into min(C/4, 32) = ", groups, " groups");
  return groups;
}

torch::Tensor GroupNormF32Impl::forward(const torch::Tensor& x) {
  if (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble)
    return torch::nn::GroupNormImpl::forward(x);
  const auto& o = options;
  return torch::group_norm(x.to(torch::kFloat), o.num_groups(), weight, bias, o.eps())
      .to(x.scalar_type());
}

GroupNormF32 make_group_norm(int64_t channels, GroupRule rule) {
  return GroupNormF32(
      torch::nn::GroupNormOptions(group_count(channels, rule), channels).eps(1e-6));
}

// ---------------------------------------------------------------------------
NINImpl::NINImpl(int64_t in_dim, int64_t num_units, double init_scale) {
  auto w = torch::empty({in_dim, num_units});
  default_init_(w, init_scale);
  w_ = register_parameter("W", w);
  b_ = register_parameter("b", torch::zeros({num_units}));
}

torch::Tensor NINImpl::forward(const torch::Tensor& x) {
  auto y = torch::matmul(x.permute({0, 2, 3, 1}), w_) + b_;
  return y.permute({0, 3, 1, 2});
}

// ---------------------------------------------------------------------------
AttnBlockImpl::AttnBlockImpl(const AttnBlockOptions& options) : options_(options) {
  const int64_t c = options.channels();
  norm_ = register_module("GroupNorm_0", make_group_norm(c, options.group_rule()));
  q_ = register_module("NIN_0", NIN(c, c));
  k_ = register_module("NIN_1", NIN(c, c));
  v_ = register_module("NIN_2", NIN(c, c));
  out_ = register_module("NIN_3", NIN(c, c, options.init_scale()));
}

torch::Tensor AttnBlockImpl::forward(const torch::Tensor& x) {
  const int64_t batch = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const auto normed = norm_(x);
  if constexpr (compat::has_sdpa()) {
    // qkv [B, HW, 3C] = normed^T [W_0 W_1 W_2] + [b_0 b_1 b_2] in one linear
    // (bfloat16 out under autocast); q, k, v its thirds as [B, 1, HW, C], one head.
    const auto qkv = torch::linear(
        normed.permute({0, 2, 3, 1}).reshape({batch, h * w, c}),
        torch::cat({q_->weight(), k_->weight(), v_->weight()}, 1).t(),
        torch::cat({q_->bias(), k_->bias(), v_->bias()}));
    const auto parts = qkv.unsqueeze(1).chunk(3, -1);
    const auto attended = compat::attention(parts[0], parts[1], parts[2],
                                            std::pow(static_cast<double>(c), -0.5));
    // [B, 1, HW, C] seen as [B, C, H, W] (channels last in memory) for NIN_3.
    return merge_residual(x, out_(attended.reshape({batch, h, w, c}).permute({0, 3, 1, 2})),
                          options_.skip_rescale());
  }
  const auto q = q_(normed).reshape({batch, c, h * w});
  const auto k = k_(normed).reshape({batch, c, h * w});
  const auto v = v_(normed).reshape({batch, c, h * w});
  // weights[b, p, j] = softmax_j(q[:, p] . k[:, j] / sqrt(C))
  auto weights = torch::bmm(q.transpose(1, 2), k) * std::pow(static_cast<double>(c), -0.5);
  // In float32 (or float64) even when autocast made the logits 16-bit.
  weights = torch::softmax(weights, -1,
                           weights.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat);
  // out[b, c, p] = sum_j weights[b, p, j] v[b, c, j]
  const auto attended = torch::bmm(v, weights.transpose(1, 2)).reshape({batch, c, h, w});
  return merge_residual(x, out_(attended), options_.skip_rescale());
}

// ---------------------------------------------------------------------------
ResnetBlockDDPMImpl::ResnetBlockDDPMImpl(const ResnetBlockDDPMOptions& options)
    : options_(options) {
  const int64_t in = options.in_ch(), out = options.out_ch();
  norm_0_ = register_module("GroupNorm_0", make_group_norm(in, options.group_rule()));
  conv_0_ = register_module("Conv_0", conv3x3(in, out));
  if (options.temb_dim() > 0)
    dense_temb_ = register_module("Dense_0", make_dense(options.temb_dim(), out));
  norm_1_ = register_module("GroupNorm_1", make_group_norm(out, options.group_rule()));
  dropout_ = register_module("Dropout_0", torch::nn::Dropout(options.dropout()));
  conv_1_ = register_module("Conv_1", conv3x3(out, out, options.init_scale()));
  if (in != out) {
    if (options.conv_shortcut()) {
      conv_shortcut_ = register_module("Conv_2", conv3x3(in, out));
    } else {
      nin_shortcut_ = register_module("NIN_0", NIN(in, out));
    }
  }
}

torch::Tensor ResnetBlockDDPMImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  const auto act = options_.act();
  auto h = conv_0_(activate(norm_0_(x), act));
  if (temb.defined() && dense_temb_) {
    h = h + dense_temb_(activate(temb, act)).unsqueeze(-1).unsqueeze(-1);
  }
  h = conv_1_(dropout_(activate(norm_1_(h), act)));
  torch::Tensor skip = x;
  if (conv_shortcut_) skip = conv_shortcut_(x);
  if (nin_shortcut_) skip = nin_shortcut_(x);
  return merge_residual(skip, h, options_.skip_rescale());
}

// ---------------------------------------------------------------------------
ResnetBlockBigGANImpl::ResnetBlockBigGANImpl(const ResnetBlockBigGANOptions& options)
    : options_(options) {
  TORCH_CHECK(!(options.up() && options.down()), "ResnetBlockBigGAN: up and down are exclusive");
  const int64_t in = options.in_ch(), out = options.out_ch();
  norm_0_ = register_module("GroupNorm_0", make_group_norm(in, GroupRule::kQuarterUpTo32));
  conv_0_ = register_module("Conv_0", conv3x3(in, out));
  if (options.temb_dim() > 0)
    dense_temb_ = register_module("Dense_0", make_dense(options.temb_dim(), out));
  norm_1_ = register_module("GroupNorm_1", make_group_norm(out, GroupRule::kQuarterUpTo32));
  dropout_ = register_module("Dropout_0", torch::nn::Dropout(options.dropout()));
  conv_1_ = register_module("Conv_1", conv3x3(out, out, options.init_scale()));
  if (in != out || options.up() || options.down()) {
    conv_shortcut_ = register_module("Conv_2", conv1x1(in, out));
  }
}

torch::Tensor ResnetBlockBigGANImpl::resample(const torch::Tensor& x) const {
  if (options_.up()) {
    return options_.fir() ? upsample_2d(x, options_.fir_kernel(), 2) : naive_upsample_2d(x, 2);
  }
  if (options_.down()) {
    return options_.fir() ? downsample_2d(x, options_.fir_kernel(), 2) : naive_downsample_2d(x, 2);
  }
  return x;
}

torch::Tensor ResnetBlockBigGANImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  const auto act = options_.act();
  auto h = resample(activate(norm_0_(x), act));
  auto skip = resample(x);
  h = conv_0_(h);
  if (temb.defined() && dense_temb_) {
    h = h + dense_temb_(activate(temb, act)).unsqueeze(-1).unsqueeze(-1);
  }
  h = conv_1_(dropout_(activate(norm_1_(h), act)));
  if (conv_shortcut_) skip = conv_shortcut_(skip);
  return merge_residual(skip, h, options_.skip_rescale());
}

torch::Tensor run_res_block(const ResBlock& block, const torch::Tensor& x,
                            const torch::Tensor& temb, bool checkpointed) {
  if (!checkpointed) return block->forward(x, temb);
  return run_block(
      true, [block](const std::vector<torch::Tensor>& in) { return block->forward(in[0], in[1]); },
      {x, temb});
}

torch::Tensor run_attn_block(const AttnBlock& block, const torch::Tensor& x, bool checkpointed) {
  const std::shared_ptr<AttnBlockImpl> impl = block.ptr();
  if (!checkpointed) return impl->forward(x);
  return run_block(
      true, [impl](const std::vector<torch::Tensor>& in) { return impl->forward(in[0]); }, {x});
}

// ---------------------------------------------------------------------------
CombineImpl::CombineImpl(int64_t dim1, int64_t dim2, CombineMethod method) : method_(method) {
  conv_ = register_module("Conv_0", conv1x1(dim1, dim2));
}

torch::Tensor CombineImpl::forward(const torch::Tensor& x, const torch::Tensor& y) {
  auto h = conv_(x);
  return method_ == CombineMethod::kCat ? torch::cat({h, y}, 1) : h + y;
}

}  // namespace scorch
