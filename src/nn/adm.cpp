// The ADM U-Net (see adm.h), line for line after guided-diffusion
// guided_diffusion/unet.py (UNetModel, ResBlock, AttentionBlock,
// QKVAttention[Legacy], Upsample, Downsample) and nn.py (conv_nd, GroupNorm32,
// timestep_embedding, zero_module). Initialisation is PyTorch's default
// (kaiming_uniform(a = sqrt 5), bias U(+-1/sqrt(fan_in))) with the reference's
// zeroed output convolutions.
#include "nn/adm.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/compat.h"
#include "core/error.h"
#include "nn/checkpoint.h"
#include "nn/embeddings.h"
#include "nn/layers.h"

namespace scorch {

namespace {

using LayerImpl = ADMLayerImpl;
using Layer = std::shared_ptr<LayerImpl>;

// conv_nd: Conv1d/2d/3d with parameters "weight" and "bias".
class ConvNdImpl : public LayerImpl {
 public:
  ConvNdImpl(int64_t dims, int64_t in_ch, int64_t out_ch, int64_t kernel,
             std::vector<int64_t> stride = {1}, int64_t padding = 0, bool zero = false)
      : dims_(dims), stride_(std::move(stride)), padding_(padding) {
    if (stride_.size() == 1) stride_.assign(dims_, stride_[0]);
    std::vector<int64_t> shape = {out_ch, in_ch};
    shape.insert(shape.end(), dims, kernel);
    weight_ = register_parameter("weight", torch::empty(shape));
    bias_ = register_parameter("bias", torch::empty({out_ch}));
    torch::NoGradGuard no_grad;
    if (zero) {
      weight_.zero_();
      bias_.zero_();
    } else {
      torch::nn::init::kaiming_uniform_(weight_, std::sqrt(5.0));
      const double bound = 1.0 / std::sqrt(static_cast<double>(weight_[0].numel()));
      bias_.uniform_(-bound, bound);
    }
  }
  const torch::Tensor& weight() const { return weight_; }  // [out, in, kernel...]
  const torch::Tensor& bias() const { return bias_; }      // [out]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& = {}) override {
    const std::vector<int64_t> pad(dims_, padding_);
    switch (dims_) {
      case 1: return torch::conv1d(x, weight_, bias_, stride_, pad);
      case 2: return torch::conv2d(x, weight_, bias_, stride_, pad);
      default: return torch::conv3d(x, weight_, bias_, stride_, pad);
    }
  }

 private:
  int64_t dims_;
  std::vector<int64_t> stride_;
  int64_t padding_;
  torch::Tensor weight_, bias_;
};
using ConvNd = std::shared_ptr<ConvNdImpl>;

ConvNd conv3(int64_t dims, int64_t in_ch, int64_t out_ch, bool zero = false) {
  return std::make_shared<ConvNdImpl>(dims, in_ch, out_ch, 3, std::vector<int64_t>{1}, 1, zero);
}

// GroupNorm32: 32 groups, eps 1e-5, statistics in float32.
GroupNormF32 norm32(int64_t channels) {
  return GroupNormF32(torch::nn::GroupNormOptions(32, channels).eps(1e-5));
}

// Nearest-neighbour 2x upsampling (F.interpolate nearest, scale 2); 3-D
// signals keep their first (depth) dimension.
torch::Tensor upsample2(const torch::Tensor& x, int64_t dims) {
  auto y = x;
  for (int64_t d = (dims == 3 ? 3 : 2); d < x.dim(); ++d) y = y.repeat_interleave(2, d);
  return y;
}

// 2x average pooling (avg_pool_nd with kernel = stride = 2, (1, 2, 2) for 3-D).
torch::Tensor avgpool2(const torch::Tensor& x, int64_t dims) {
  switch (dims) {
    case 1: return torch::avg_pool1d(x, {2}, {2});
    case 2: return torch::avg_pool2d(x, {2, 2}, {2, 2});
    default: return torch::avg_pool3d(x, {1, 2, 2}, {1, 2, 2});
  }
}

std::vector<int64_t> resample_stride(int64_t dims) {
  return dims == 3 ? std::vector<int64_t>{1, 2, 2} : std::vector<int64_t>{2};
}

// Broadcasts [B, C] over the spatial dimensions of a [B, C, ...] tensor.
torch::Tensor per_channel(const torch::Tensor& v, int64_t ndim) {
  std::vector<int64_t> shape = {v.size(0), v.size(1)};
  shape.resize(ndim, 1);
  return v.view(shape);
}

// An empty module used as a named container so that children get the
// reference's names (in_layers.0, in_layers.2, ...).
std::shared_ptr<torch::nn::Module> container(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

class UpsampleImpl : public LayerImpl {
 public:
  UpsampleImpl(int64_t channels, bool use_conv, int64_t dims, int64_t out_ch) : dims_(dims) {
    if (use_conv) conv_ = register_module("conv", conv3(dims, channels, out_ch));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&) override {
    auto h = upsample2(x, dims_);
    return conv_ ? conv_->forward(h) : h;
  }

 private:
  int64_t dims_;
  ConvNd conv_;
};

class DownsampleImpl : public LayerImpl {
 public:
  DownsampleImpl(int64_t channels, bool use_conv, int64_t dims, int64_t out_ch) : dims_(dims) {
    if (use_conv)
      op_ = register_module("op", std::make_shared<ConvNdImpl>(dims, channels, out_ch, 3,
                                                               resample_stride(dims), 1));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&) override {
    return op_ ? op_->forward(x) : avgpool2(x, dims_);
  }

 private:
  int64_t dims_;
  ConvNd op_;
};

struct ResBlockArgs {
  int64_t channels, emb_channels, out_channels, dims;
  double dropout;
  bool use_scale_shift_norm, up = false, down = false;
};

class ADMResBlockImpl : public LayerImpl {
 public:
  explicit ADMResBlockImpl(const ResBlockArgs& a) : a_(a) {
    auto in_layers = container(*this, "in_layers");
    in_norm_ = in_layers->register_module("0", norm32(a.channels));
    in_conv_ = in_layers->register_module("2", conv3(a.dims, a.channels, a.out_channels));
    auto emb_layers = container(*this, "emb_layers");
    emb_linear_ = emb_layers->register_module(
        "1", torch::nn::Linear(a.emb_channels,
                               a.use_scale_shift_norm ? 2 * a.out_channels : a.out_channels));
    auto out_layers = container(*this, "out_layers");
    out_norm_ = out_layers->register_module("0", norm32(a.out_channels));
    out_conv_ = out_layers->register_module(
        "3", conv3(a.dims, a.out_channels, a.out_channels, /*zero=*/true));
    if (a.out_channels != a.channels)
      skip_ = register_module("skip_connection", std::make_shared<ConvNdImpl>(
                                                     a.dims, a.channels, a.out_channels, 1));
  }

  torch::Tensor forward(const torch::Tensor& x_in, const torch::Tensor& emb) override {
    auto x = x_in;
    torch::Tensor h = torch::silu(in_norm_(x));
    if (a_.up || a_.down) {
      const auto resample = [&](const torch::Tensor& t) {
        return a_.up ? upsample2(t, a_.dims) : avgpool2(t, a_.dims);
      };
      h = resample(h);
      x = resample(x);
    }
    h = in_conv_->forward(h);
    auto emb_out = per_channel(emb_linear_(torch::silu(emb)).to(h.scalar_type()), h.dim());
    if (a_.use_scale_shift_norm) {
      auto scale_shift = emb_out.chunk(2, 1);
      h = out_norm_(h) * (1 + scale_shift[0]) + scale_shift[1];
      h = torch::silu(h);
    } else {
      h = torch::silu(out_norm_(h + emb_out));
    }
    h = out_conv_->forward(torch::dropout(h, a_.dropout, is_training()));
    return (skip_ ? skip_->forward(x) : x) + h;
  }

 private:
  ResBlockArgs a_;
  GroupNormF32 in_norm_{nullptr}, out_norm_{nullptr};
  ConvNd in_conv_, out_conv_, skip_;
  torch::nn::Linear emb_linear_{nullptr};
};

// Multi-head self-attention over all positions. qkv [B, 3 H ch, T] -> [B, H ch, T].
// Legacy order (QKVAttentionLegacy) splits heads before q/k/v; the new order
// (QKVAttention) splits q/k/v first. Scaling by ch^(-1/4) on both q and k
// and a float32 softmax, as the reference. LibTorch 1.13's path; >= 2.1 goes
// through AttentionBlockImpl::attend_sdpa.
torch::Tensor qkv_attention(const torch::Tensor& qkv, int64_t heads, bool new_order) {
  const int64_t b = qkv.size(0), width = qkv.size(1), length = qkv.size(2);
  const int64_t ch = width / (3 * heads);
  torch::Tensor q, k, v;
  if (new_order) {
    auto parts = qkv.chunk(3, 1);
    q = parts[0].reshape({b * heads, ch, length});
    k = parts[1].reshape({b * heads, ch, length});
    v = parts[2].reshape({b * heads, ch, length});
  } else {
    auto parts = qkv.reshape({b * heads, 3 * ch, length}).split(ch, 1);
    q = parts[0], k = parts[1], v = parts[2];
  }
  const double scale = 1.0 / std::sqrt(std::sqrt(static_cast<double>(ch)));
  auto weight = torch::bmm((q * scale).transpose(1, 2), k * scale);  // [BH, T(q), T(k)]
  weight = torch::softmax(weight.to(torch::kFloat), -1).to(weight.scalar_type());
  return torch::bmm(v, weight.transpose(1, 2)).reshape({b, -1, length});
}

class AttentionBlockImpl : public LayerImpl {
 public:
  AttentionBlockImpl(int64_t channels, int64_t num_heads, int64_t num_head_channels,
                     bool new_order)
      : heads_(num_head_channels > 0 ? channels / num_head_channels : num_heads),
        new_order_(new_order) {
    norm_ = register_module("norm", norm32(channels));
    qkv_ = register_module("qkv", std::make_shared<ConvNdImpl>(1, channels, 3 * channels, 1));
    proj_out_ = register_module(
        "proj_out", std::make_shared<ConvNdImpl>(1, channels, channels, 1,
                                                 std::vector<int64_t>{1}, 0, /*zero=*/true));
  }
  torch::Tensor forward(const torch::Tensor& x_in, const torch::Tensor&) override {
    const auto shape = x_in.sizes().vec();
    auto x = x_in.reshape({shape[0], shape[1], -1});
    if constexpr (compat::has_sdpa()) return (x + attend_sdpa(norm_(x))).reshape(shape);
    auto h = qkv_attention(qkv_->forward(norm_(x)), heads_, new_order_);
    return (x + proj_out_->forward(h)).reshape(shape);
  }

 private:
  // proj_out(attention(qkv(normed))) through SDPA: normed [B, C, T] -> [B, C, T].
  // The 1x1 convolutions as linears on [B, T, C] (bfloat16 out under autocast),
  // so q, k, v are [B, H, T, ch] views contiguous in ch. Channel c of qkv is
  // (h * 3 + j) * ch + i in the legacy order, (j * H + h) * ch + i in the new
  // (j = 0, 1, 2 for q, k, v). softmax(q^T k ch^-1/2) = the reference's
  // ch^-1/4 on q and on k.
  torch::Tensor attend_sdpa(const torch::Tensor& normed) const {
    const int64_t b = normed.size(0), c = normed.size(1), t = normed.size(2), ch = c / heads_;
    const auto qkv = torch::linear(normed.transpose(1, 2), qkv_->weight().flatten(1), qkv_->bias());
    const auto parts = new_order_ ? qkv.view({b, t, 3, heads_, ch}).unbind(2)
                                  : qkv.view({b, t, heads_, 3, ch}).unbind(3);
    const auto h = compat::attention(parts[0].transpose(1, 2), parts[1].transpose(1, 2),
                                     parts[2].transpose(1, 2),
                                     1.0 / std::sqrt(static_cast<double>(ch)));  // [B, H, T, ch]
    const auto merged = h.transpose(1, 2).reshape({b, t, c});  // channel h * ch + i
    return torch::linear(merged, proj_out_->weight().flatten(1), proj_out_->bias()).transpose(1, 2);
  }

  int64_t heads_;
  bool new_order_;
  GroupNormF32 norm_{nullptr};
  ConvNd qkv_, proj_out_;
};

}  // namespace

namespace {
// What model.checkpointing may recompute.
enum class LayerKind { kOther, kResidual, kAttention };
}  // namespace

// TimestepEmbedSequential: children "0", "1", ... applied in turn; residual
// and attention layers checkpointed as `mode` says (while training).
class ADMImpl::Stack : public torch::nn::Module {
 public:
  void add(Layer layer, LayerKind kind = LayerKind::kOther) {
    layers_.push_back(register_module(std::to_string(layers_.size()), std::move(layer)));
    kinds_.push_back(kind);
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& emb, Checkpointing mode) {
    for (size_t i = 0; i < layers_.size(); ++i) {
      const auto& l = layers_[i];
      const bool ckpt = is_training() && ((kinds_[i] == LayerKind::kResidual &&
                                           checkpoint_residual(mode)) ||
                                          (kinds_[i] == LayerKind::kAttention &&
                                           checkpoint_attention(mode)));
      if (!ckpt) {
        x = l->forward(x, emb);
      } else if (kinds_[i] == LayerKind::kAttention) {
        x = run_block(true, [l](const std::vector<torch::Tensor>& in) {
          return l->forward(in[0], torch::Tensor());
        }, {x});
      } else {
        x = run_block(true, [l](const std::vector<torch::Tensor>& in) {
          return l->forward(in[0], in[1]);
        }, {x, emb});
      }
    }
    return x;
  }

 private:
  std::vector<Layer> layers_;
  std::vector<LayerKind> kinds_;
};

torch::Tensor adm_timestep_embedding(const torch::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  // float32 as guided-diffusion's th.arange(..., dtype=th.float32), made on
  // t's device: no host-to-device copy per call.
  auto freqs =
      torch::exp(-std::log(10000.0) * torch::arange(0, half, t.options().dtype(torch::kFloat)) /
                 static_cast<double>(half));
  auto args = t.to(torch::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
  auto emb = torch::cat({torch::cos(args), torch::sin(args)}, -1);
  if (dim % 2) emb = torch::cat({emb, torch::zeros_like(emb.slice(1, 0, 1))}, -1);
  return emb;
}

void check_adm_options(const ADMOptions& o) {
  SCORCH_CHECK(o.dims() >= 1 && o.dims() <= 3, "model.dims must be 1, 2 or 3 (ADM dims), got ",
               o.dims());
  SCORCH_CHECK(!o.channel_mult().empty(), "model.ch_mult (ADM channel_mult) must list a level");
  SCORCH_CHECK(o.in_channels() > 0 && o.out_channels() > 0, "ADM in_channels (",
               o.in_channels(), ") and out_channels (", o.out_channels(), ") must be positive");
  const int64_t levels = static_cast<int64_t>(o.channel_mult().size());
  const int64_t factor = int64_t{1} << (levels - 1);
  SCORCH_CHECK(o.image_size() % factor == 0, "data.image_size ", o.image_size(),
               " must be divisible by 2^(len(model.ch_mult) - 1) = ", factor,
               " for the ADM U-Net's ", levels, " levels");
  const auto heads_divide = [&](int64_t ch, int64_t heads, const char* key) {
    if (o.num_head_channels() > 0) {
      SCORCH_CHECK(ch % o.num_head_channels() == 0, "model.num_head_channels ",
                   o.num_head_channels(), " does not divide the ", ch,
                   " channels of an attention block");
    } else {
      SCORCH_CHECK(heads > 0 && ch % heads == 0, key, " ", heads, " does not divide the ", ch,
                   " channels of an attention block");
    }
  };
  for (int64_t level = 0; level < levels; ++level) {
    const int64_t mult = o.channel_mult()[level];
    SCORCH_CHECK(mult > 0, "model.ch_mult entries must be positive, got ", mult);
    const int64_t ch = mult * o.model_channels();
    SCORCH_CHECK(ch % 32 == 0, "model.nf x model.ch_mult[", level, "] (ADM model_channels x ",
                 "channel_mult) = ", ch,
                 " channels is not divisible by the 32 groups of GroupNorm32; use a multiple of 32");
    const bool attention = std::count(o.attention_ds().begin(), o.attention_ds().end(),
                                      int64_t{1} << level) > 0;
    if (attention || level == levels - 1) {  // the middle block always has attention
      heads_divide(ch, o.num_heads(), "model.num_heads");
      heads_divide(ch, o.num_heads_upsample() == -1 ? o.num_heads() : o.num_heads_upsample(),
                   "model.num_heads_upsample");
    }
  }
  for (int64_t ds : o.attention_ds()) {
    SCORCH_CHECK(ds >= 1 && ds <= factor && (ds & (ds - 1)) == 0, "attention at downsampling rate ",
                 ds, " (the network's input size ", o.image_size(),
                 " / a model.attn_resolutions entry) is no level's: the levels have rates 1 to ",
                 factor, " (powers of two), sizes ", o.image_size(), " to ", o.image_size() / factor);
  }
  SCORCH_CHECK(o.dropout() >= 0 && o.dropout() <= 1, "model.dropout must lie in [0, 1], got ",
               o.dropout());
}

ADMImpl::ADMImpl(const ADMOptions& options) : options_(options) {
  check_adm_options(options_);
  const auto& o = options_;
  const int64_t dims = o.dims(), mc = o.model_channels(), emb_dim = 4 * mc;
  const int64_t heads_up = o.num_heads_upsample() == -1 ? o.num_heads() : o.num_heads_upsample();
  const auto has_attention = [&](int64_t ds) {
    return std::count(o.attention_ds().begin(), o.attention_ds().end(), ds) > 0;
  };
  const auto res_block = [&](int64_t ch, int64_t out_ch, bool up = false, bool down = false) {
    return std::make_shared<ADMResBlockImpl>(ResBlockArgs{
        ch, emb_dim, out_ch, dims, o.dropout(), o.use_scale_shift_norm(), up, down});
  };
  const auto attention = [&](int64_t ch, int64_t heads) {
    return std::make_shared<AttentionBlockImpl>(ch, heads, o.num_head_channels(),
                                                o.use_new_attention_order());
  };

  auto time_embed = container(*this, "time_embed");
  time_embed_0_ = time_embed->register_module("0", torch::nn::Linear(mc, emb_dim));
  time_embed_2_ = time_embed->register_module("2", torch::nn::Linear(emb_dim, emb_dim));
  if (o.num_classes() > 0)
    label_emb_ = register_module("label_emb", torch::nn::Embedding(o.num_classes() + 1, emb_dim));

  auto inputs = container(*this, "input_blocks");
  const auto new_stack = [](torch::nn::Module& parent, std::vector<std::shared_ptr<Stack>>& list) {
    list.push_back(parent.register_module(std::to_string(list.size()), std::make_shared<Stack>()));
    return list.back();
  };
  int64_t ch = o.channel_mult()[0] * mc;
  const int64_t input_ch = ch;
  new_stack(*inputs, input_blocks_)->add(conv3(dims, o.in_channels(), ch));
  std::vector<int64_t> chans = {ch};
  int64_t ds = 1;
  const int64_t levels = static_cast<int64_t>(o.channel_mult().size());
  for (int64_t level = 0; level < levels; ++level) {
    const int64_t mult = o.channel_mult()[level];
    for (int64_t i = 0; i < o.num_res_blocks(); ++i) {
      auto stack = new_stack(*inputs, input_blocks_);
      stack->add(res_block(ch, mult * mc), LayerKind::kResidual);
      ch = mult * mc;
      if (has_attention(ds)) stack->add(attention(ch, o.num_heads()), LayerKind::kAttention);
      chans.push_back(ch);
    }
    if (level != levels - 1) {
      auto stack = new_stack(*inputs, input_blocks_);
      if (o.resblock_updown())
        stack->add(res_block(ch, ch, false, true), LayerKind::kResidual);
      else
        stack->add(std::make_shared<DownsampleImpl>(ch, o.conv_resample(), dims, ch));
      chans.push_back(ch);
      ds *= 2;
    }
  }

  middle_block_ = register_module("middle_block", std::make_shared<Stack>());
  middle_block_->add(res_block(ch, ch), LayerKind::kResidual);
  middle_block_->add(attention(ch, o.num_heads()), LayerKind::kAttention);
  middle_block_->add(res_block(ch, ch), LayerKind::kResidual);

  auto outputs = container(*this, "output_blocks");
  for (int64_t level = levels - 1; level >= 0; --level) {
    const int64_t mult = o.channel_mult()[level];
    for (int64_t i = 0; i <= o.num_res_blocks(); ++i) {
      const int64_t skip_ch = chans.back();
      chans.pop_back();
      auto stack = new_stack(*outputs, output_blocks_);
      stack->add(res_block(ch + skip_ch, mc * mult), LayerKind::kResidual);
      ch = mc * mult;
      if (has_attention(ds)) stack->add(attention(ch, heads_up), LayerKind::kAttention);
      if (level > 0 && i == o.num_res_blocks()) {
        if (o.resblock_updown())
          stack->add(res_block(ch, ch, true, false), LayerKind::kResidual);
        else
          stack->add(std::make_shared<UpsampleImpl>(ch, o.conv_resample(), dims, ch));
        ds /= 2;
      }
    }
  }
  TORCH_CHECK(chans.empty(), "ADM: skip connections left over");

  auto out = container(*this, "out");
  out_norm_ = out->register_module("0", norm32(ch));
  out_conv_ = out->register_module("2", conv3(dims, input_ch, o.out_channels(), /*zero=*/true));

  if (o.scale_by_sigma() && !o.sigmas().empty())
    sigmas_ = register_buffer("sigmas", torch::tensor(o.sigmas(), torch::kDouble));
}

torch::Tensor ADMImpl::forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                               const torch::Tensor& class_labels) {
  const auto& flat = options_.flat_shape();
  if (x.dim() == 2 && !flat.empty()) {
    std::vector<int64_t> shape = {x.size(0)};
    shape.insert(shape.end(), flat.begin(), flat.end());
    return forward_signal(x.reshape(shape), time_cond, class_labels).reshape({x.size(0), -1});
  }
  return forward_signal(x, time_cond, class_labels);
}

torch::Tensor ADMImpl::forward_signal(const torch::Tensor& x_in, const torch::Tensor& time_cond,
                                      const torch::Tensor& class_labels) {
  const auto& o = options_;
  TORCH_CHECK(x_in.dim() == o.dims() + 2 && x_in.size(1) == o.in_channels(), "ADM (dims ",
              o.dims(), ") expects [B, ", o.in_channels(), ", ", o.dims(),
              " spatial dimensions], got ", x_in.sizes());
  TORCH_CHECK(time_cond.dim() == 1 && time_cond.size(0) == x_in.size(0),
              "ADM expects time_cond [B], got ", time_cond.sizes());
  auto emb = time_embed_2_(torch::silu(time_embed_0_(
      adm_timestep_embedding(time_cond, o.model_channels()).to(time_embed_0_->weight.dtype()))));
  if (label_emb_)
    emb = emb + embed_class_labels(label_emb_, class_labels, x_in.size(0), emb.device());

  auto h = o.centered() ? x_in : 2 * x_in - 1.0;
  std::vector<torch::Tensor> hs;
  for (auto& block : input_blocks_) {
    h = block->forward(h, emb, o.checkpointing());
    hs.push_back(h);
  }
  h = middle_block_->forward(h, emb, o.checkpointing());
  for (auto& block : output_blocks_) {
    h = block->forward(torch::cat({h, hs.back()}, 1), emb, o.checkpointing());
    hs.pop_back();
  }
  h = out_conv_->forward(torch::silu(out_norm_(h)), emb);
  if (o.scale_by_sigma()) {
    auto sigma = sigmas_.defined() ? sigmas_.index({time_cond.to(torch::kLong)}) : time_cond;
    std::vector<int64_t> shape(h.dim(), 1);
    shape[0] = -1;
    h = h / sigma.to(h.scalar_type()).reshape(shape);
  }
  return h;
}

}  // namespace scorch
