// EDM2's magnitude-preserving U-Net and Precond (Karras et al. 2024; NVlabs/edm2
// training/networks_edm2.py, which this file follows line for line; see edm2.h).
#include "nn/edm2.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"

namespace scorch {
namespace {
// Autocast off in its scope: the embeddings and the logvar head run in
// float32, as in EDM2, whose float16 mode casts only the image path (x_in).
using NoAutocast = c10::impl::ExcludeDispatchKeyGuard;
}  // namespace

torch::Tensor mp_normalize(const torch::Tensor& x, at::IntArrayRef dims_in, double eps) {
  std::vector<int64_t> dims(dims_in.begin(), dims_in.end());
  if (dims.empty())
    for (int64_t d = 1; d < x.dim(); ++d) dims.push_back(d);
  const auto dtype = x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto norm = at::linalg_vector_norm(x, 2, dims, /*keepdim=*/true, dtype);
  const double alpha =
      std::sqrt(static_cast<double>(norm.numel()) / static_cast<double>(x.numel()));
  norm = torch::add(torch::scalar_tensor(eps, norm.options()), norm, alpha);  // eps + alpha ||x||
  return x / norm.to(x.scalar_type());
}

torch::Tensor mp_silu(const torch::Tensor& x) { return torch::silu(x) / 0.596; }

torch::Tensor mp_sum(const torch::Tensor& a, const torch::Tensor& b, double t) {
  return torch::lerp(a, b, t) / std::sqrt((1 - t) * (1 - t) + t * t);
}

torch::Tensor mp_cat(const torch::Tensor& a, const torch::Tensor& b, double t) {
  const auto na = static_cast<double>(a.size(1)), nb = static_cast<double>(b.size(1));
  const double c = std::sqrt((na + nb) / ((1 - t) * (1 - t) + t * t));
  return torch::cat({a * (c / std::sqrt(na) * (1 - t)), b * (c / std::sqrt(nb) * t)}, 1);
}

torch::Tensor mp_resample(const torch::Tensor& x, EDM2Resample mode) {
  namespace F = torch::nn::functional;
  switch (mode) {
    case EDM2Resample::kKeep:
      return x;
    case EDM2Resample::kDown:
      return F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2));
    case EDM2Resample::kUp:
      return F::interpolate(x, F::InterpolateFuncOptions()
                                   .size(std::vector<int64_t>{2 * x.size(2), 2 * x.size(3)})
                                   .mode(torch::kNearest));
  }
  TORCH_CHECK(false, "mp_resample: unknown mode");
}

// ---------------------------------------------------------------------------

MPFourierImpl::MPFourierImpl(int64_t num_channels, double bandwidth, torch::Device device) {
  const auto options = torch::TensorOptions().device(device);
  freqs_ = register_buffer("freqs", 2 * M_PI * torch::randn({num_channels}, options) * bandwidth);
  phases_ = register_buffer("phases", 2 * M_PI * torch::rand({num_channels}, options));
}

torch::Tensor MPFourierImpl::forward(const torch::Tensor& x) {
  // x ger freqs, written as a broadcast product (the same single rounding per
  // element; ger is not an autocast op).
  auto y = x.to(torch::kFloat).unsqueeze(1) * freqs_.to(torch::kFloat).unsqueeze(0);
  y = y + phases_.to(torch::kFloat);
  return (y.cos() * std::sqrt(2.0)).to(x.scalar_type());
}

MPConvImpl::MPConvImpl(int64_t in_channels, int64_t out_channels, int64_t kernel,
                       torch::Device device)
    : out_channels_(out_channels) {
  const auto options = torch::TensorOptions().device(device);
  weight_ = register_parameter(
      "weight", kernel > 0 ? torch::randn({out_channels, in_channels, kernel, kernel}, options)
                           : torch::randn({out_channels, in_channels}, options));
}

torch::Tensor MPConvImpl::forward(const torch::Tensor& x, const torch::Tensor& gain) {
  if (is_training()) {  // forced weight normalization (Eq. 66)
    torch::NoGradGuard no_grad;
    weight_.copy_(mp_normalize(weight_.to(torch::kFloat)));
  }
  auto w = mp_normalize(weight_.to(torch::kFloat));  // traditional weight normalization
  const double fan_in = static_cast<double>(w.numel() / w.size(0));
  w = gain.defined() ? w * (gain / std::sqrt(fan_in)) : w * (1.0 / std::sqrt(fan_in));
  w = w.to(x.scalar_type());
  if (w.dim() == 2) return torch::matmul(x, w.t());
  return torch::conv2d(x, w, {}, 1, w.size(-1) / 2);
}

// ---------------------------------------------------------------------------

void check_edm2_options(const EDM2Options& o) {
  const auto& mult = o.channel_mult();
  SCORCH_CHECK(!mult.empty(),
               "model.edm2_channel_mult (channel_mult) must list at least one level");
  for (int64_t m : mult)
    SCORCH_CHECK(m > 0, "model.edm2_channel_mult (channel_mult): ", m, " must be positive");
  SCORCH_CHECK(o.model_channels() > 0 && o.img_channels() > 0 && o.label_dim() >= 0 &&
                   o.num_blocks() >= 0 && o.channels_per_head() > 0 && o.logvar_channels() > 0 &&
                   o.channel_mult_noise() >= 0 && o.channel_mult_emb() >= 0,
               "EDM2: model.nf, data.num_channels, model.edm2_channels_per_head and "
               "model.edm2_logvar_channels must be positive; data.num_classes, "
               "model.edm2_num_blocks and model.edm2_channel_mult_noise/_emb >= 0");
  const int64_t levels = static_cast<int64_t>(mult.size());
  SCORCH_CHECK(
      o.image_size() % (int64_t{1} << (levels - 1)) == 0, "data.image_size (", o.image_size(),
      ") must be divisible by 2^(len(model.edm2_channel_mult)-1) = ", int64_t{1} << (levels - 1));
  for (double b : {o.label_balance(), o.concat_balance(), o.res_balance(), o.attn_balance()})
    SCORCH_CHECK(b >= 0 && b <= 1, "EDM2: balance ", b, " must be in [0, 1]");
  SCORCH_CHECK(o.dropout() >= 0 && o.dropout() <= 1, "model.dropout ", o.dropout(),
               " must be in [0, 1]");
  SCORCH_CHECK(o.clip_act() >= 0 && o.sigma_data() > 0, "EDM2: clip_act >= 0, sigma_data > 0");
  for (int64_t r : o.attn_resolutions()) {
    bool found = false;
    for (int64_t level = 0; level < levels; ++level) found |= (o.image_size() >> level) == r;
    SCORCH_CHECK(found, "model.edm2_attn_resolutions lists ", r, ", which is no level's size (",
                 o.image_size(), " halved up to ", levels - 1, " times)");
  }
  // Heads = channels / channels_per_head (0: no attention, as the reference);
  // the reshape into heads needs them to divide the channels.
  for (int64_t level = 0; level < levels; ++level) {
    const int64_t c = o.model_channels() * mult[level], heads = c / o.channels_per_head();
    SCORCH_CHECK(heads == 0 || c % heads == 0, "EDM2: level ", level, " has ", c,
                 " channels, not divisible into ", heads,
                 " attention heads of model.edm2_channels_per_head=", o.channels_per_head());
  }
}

EDM2BlockImpl::EDM2BlockImpl(int64_t in_channels, int64_t out_channels, int64_t emb_channels,
                             bool decoder, EDM2Resample resample, bool attention,
                             const EDM2Options& o)
    : out_channels_(out_channels),
      decoder_(decoder),
      resample_(resample),
      num_heads_(attention ? out_channels / o.channels_per_head() : 0),
      dropout_(o.dropout()),
      res_balance_(o.res_balance()),
      attn_balance_(o.attn_balance()),
      clip_act_(o.clip_act()) {
  const auto dev = o.device();
  emb_gain_ = register_parameter("emb_gain", torch::zeros({}, torch::TensorOptions().device(dev)));
  conv_res0_ = register_module("conv_res0",
                               MPConv(decoder ? in_channels : out_channels, out_channels, 3, dev));
  emb_linear_ = register_module("emb_linear", MPConv(emb_channels, out_channels, 0, dev));
  conv_res1_ = register_module("conv_res1", MPConv(out_channels, out_channels, 3, dev));
  if (in_channels != out_channels)
    conv_skip_ = register_module("conv_skip", MPConv(in_channels, out_channels, 1, dev));
  if (num_heads_ != 0) {
    attn_qkv_ = register_module("attn_qkv", MPConv(out_channels, out_channels * 3, 1, dev));
    attn_proj_ = register_module("attn_proj", MPConv(out_channels, out_channels, 1, dev));
  }
}

torch::Tensor EDM2BlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& emb) {
  // Main branch.
  auto x = mp_resample(x_in, resample_);
  if (!decoder_) {
    if (conv_skip_) x = conv_skip_(x);
    x = mp_normalize(x, {1});  // pixel norm
  }
  // Residual branch.
  auto y = conv_res0_(mp_silu(x));
  torch::Tensor c;
  {
    NoAutocast float32(c10::autocast_dispatch_keyset);
    c = emb_linear_(emb, emb_gain_) + 1;
  }
  y = mp_silu(y * c.unsqueeze(2).unsqueeze(3).to(y.scalar_type()));
  if (is_training() && dropout_ != 0) y = torch::dropout(y, dropout_, /*train=*/true);
  y = conv_res1_(y);
  // Connect the branches.
  if (decoder_ && conv_skip_) x = conv_skip_(x);
  x = mp_sum(x, y, res_balance_);
  if (num_heads_ != 0) x = mp_sum(x, attention(x), attn_balance_);
  if (clip_act_ > 0) x = x.clamp(-clip_act_, clip_act_);
  return x;
}

// Cosine attention: q, k, v pixel-normalised per head, softmax(q.k / sqrt(c)).
torch::Tensor EDM2BlockImpl::attention(const torch::Tensor& x) {
  auto y = attn_qkv_(x);  // [N, 3C, H, W] as [heads, C / heads, 3]
  y = y.reshape({y.size(0), num_heads_, -1, 3, y.size(2) * y.size(3)});
  const auto qkv = mp_normalize(y, {2}).unbind(3);
  const auto &q = qkv[0], &k = qkv[1], &v = qkv[2];  // [N, heads, c, HW]
  const auto w =
      torch::einsum("nhcq,nhck->nhqk", {q, k / std::sqrt(static_cast<double>(q.size(2)))})
          .softmax(3);
  y = torch::einsum("nhqk,nhck->nhcq", {w, v});
  return attn_proj_(y.reshape(x.sizes()));
}

// ---------------------------------------------------------------------------

namespace {
std::string level_name(int64_t res, const std::string& what) {
  return std::to_string(res) + "x" + std::to_string(res) + "_" + what;
}
}  // namespace

EDM2UNetImpl::EDM2UNetImpl(const EDM2Options& options) : options_(options) {
  // #lizard forgives: the reference's constructor, line for line
  const auto& o = options_;
  check_edm2_options(o);
  const auto dev = o.device();
  std::vector<int64_t> cblock;
  for (int64_t m : o.channel_mult()) cblock.push_back(o.model_channels() * m);
  const int64_t cnoise =
      o.channel_mult_noise() > 0 ? o.model_channels() * o.channel_mult_noise() : cblock[0];
  const int64_t cemb = o.channel_mult_emb() > 0 ? o.model_channels() * o.channel_mult_emb()
                                                : *std::max_element(cblock.begin(), cblock.end());
  const auto attn = [&](int64_t res) {
    const auto& r = o.attn_resolutions();
    return std::find(r.begin(), r.end(), res) != r.end();
  };
  out_gain_ = register_parameter("out_gain", torch::zeros({}, torch::TensorOptions().device(dev)));

  // Embedding.
  emb_fourier_ = register_module("emb_fourier", MPFourier(cnoise, 1.0, dev));
  emb_noise_ = register_module("emb_noise", MPConv(cnoise, cemb, 0, dev));
  if (o.label_dim() != 0)
    emb_label_ = register_module("emb_label", MPConv(o.label_dim(), cemb, 0, dev));

  // Encoder.
  auto enc = register_module("enc", std::make_shared<torch::nn::Module>());
  int64_t cout = o.img_channels() + 1;
  const auto levels = static_cast<int64_t>(cblock.size());
  for (int64_t level = 0; level < levels; ++level) {
    const int64_t res = o.image_size() >> level;
    if (level == 0) {
      const int64_t cin = cout;
      cout = cblock[level];
      enc_conv_ = enc->register_module(level_name(res, "conv"), MPConv(cin, cout, 3, dev));
    } else {
      enc_.emplace_back(level_name(res, "down"),
                        EDM2Block(cout, cout, cemb, false, EDM2Resample::kDown, false, o));
    }
    for (int64_t idx = 0; idx < o.num_blocks(); ++idx) {
      const int64_t cin = cout;
      cout = cblock[level];
      enc_.emplace_back(level_name(res, "block" + std::to_string(idx)),
                        EDM2Block(cin, cout, cemb, false, EDM2Resample::kKeep, attn(res), o));
    }
  }
  std::vector<int64_t> skips = {cblock[0]};  // every encoder output, the first convolution's too
  for (auto& [name, block] : enc_) {
    enc->register_module(name, block);
    skips.push_back(block->out_channels());
  }

  // Decoder.
  auto dec = register_module("dec", std::make_shared<torch::nn::Module>());
  for (int64_t level = levels - 1; level >= 0; --level) {
    const int64_t res = o.image_size() >> level;
    if (level == levels - 1) {
      dec_.emplace_back(level_name(res, "in0"),
                        EDM2Block(cout, cout, cemb, true, EDM2Resample::kKeep, true, o));
      dec_.emplace_back(level_name(res, "in1"),
                        EDM2Block(cout, cout, cemb, true, EDM2Resample::kKeep, false, o));
    } else {
      dec_.emplace_back(level_name(res, "up"),
                        EDM2Block(cout, cout, cemb, true, EDM2Resample::kUp, false, o));
    }
    for (int64_t idx = 0; idx <= o.num_blocks(); ++idx) {
      const int64_t cin = cout + skips.back();
      skips.pop_back();
      cout = cblock[level];
      dec_.emplace_back(level_name(res, "block" + std::to_string(idx)),
                        EDM2Block(cin, cout, cemb, true, EDM2Resample::kKeep, attn(res), o));
    }
  }
  for (auto& [name, block] : dec_) dec->register_module(name, block);
  out_conv_ = register_module("out_conv", MPConv(cout, o.img_channels(), 3, dev));
}

torch::Tensor EDM2UNetImpl::embed(const torch::Tensor& c_noise, const torch::Tensor& class_labels) {
  const auto& o = options_;
  NoAutocast float32(c10::autocast_dispatch_keyset);
  auto emb = emb_noise_(emb_fourier_(c_noise));
  if (emb_label_) {
    const int64_t k = o.label_dim();
    // One-hot rows; the null class (k) and undefined labels are zero rows
    // (the reference's class_labels=None is a single zero row).
    const auto onehot = class_labels.defined()
                            ? torch::one_hot(class_labels.to(torch::kLong), k + 1)
                                  .narrow(1, 0, k)
                                  .to(emb.scalar_type())
                            : torch::zeros({1, k}, emb.options());
    emb = mp_sum(emb, emb_label_(onehot * std::sqrt(static_cast<double>(k))), o.label_balance());
  }
  return mp_silu(emb);
}

torch::Tensor EDM2UNetImpl::forward(const torch::Tensor& x_in, const torch::Tensor& c_noise,
                                    const torch::Tensor& class_labels) {
  const auto& o = options_;
  const auto emb = embed(c_noise, class_labels);
  // Encoder.
  auto x = torch::cat({x_in, torch::ones_like(x_in.narrow(1, 0, 1))}, 1);
  std::vector<torch::Tensor> skips;
  x = enc_conv_(x);
  skips.push_back(x);
  for (auto& [name, block] : enc_) {
    x = block(x, emb);
    skips.push_back(x);
  }
  // Decoder.
  for (auto& [name, block] : dec_) {
    if (name.find("block") != std::string::npos) {
      x = mp_cat(x, skips.back(), o.concat_balance());
      skips.pop_back();
    }
    x = block(x, emb);
  }
  return out_conv_(x, out_gain_);
}

// ---------------------------------------------------------------------------

namespace {
PrecondOptions edm2_precond_options(const EDM2Options& o) {
  PrecondOptions p;
  p.kind = Precond::kEDM;  // c_skip, c_out, c_in of sd; c_noise = ln(sigma) / 4
  p.sigma_data = o.sigma_data();
  return p;
}
}  // namespace

EDM2PrecondImpl::EDM2PrecondImpl(const EDM2Options& options, std::shared_ptr<const Sde> sde)
    : PrecondScoreNetImpl(edm2_precond_options(options), std::move(sde),
                          std::make_shared<EDM2UNetImpl>(options), "unet"),
      options_(options),
      unet_(std::dynamic_pointer_cast<EDM2UNetImpl>(inner())) {
  const auto dev = options_.device();
  logvar_fourier_ =
      register_module("logvar_fourier", MPFourier(options_.logvar_channels(), 1.0, dev));
  logvar_linear_ = register_module("logvar_linear", MPConv(options_.logvar_channels(), 1, 0, dev));
}

torch::Tensor EDM2PrecondImpl::logvar(const torch::Tensor& sigma) {
  NoAutocast float32(c10::autocast_dispatch_keyset);
  const auto c_noise = sigma.to(torch::kFloat).log() / 4;
  return logvar_linear_(logvar_fourier_(c_noise)).reshape({-1});
}

EDM2PrecondImpl::Output EDM2PrecondImpl::denoise_with_logvar(const torch::Tensor& x,
                                                             const torch::Tensor& sigma,
                                                             const torch::Tensor& class_labels) {
  return {denoise(x, sigma, class_labels), logvar(sigma)};
}

}  // namespace scorch
