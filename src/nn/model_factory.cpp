// The model factory: config keys -> network options -> network (see
// model_factory.h and score_net.h). Option names and their meaning follow
// score_sde's configs (configs/default_cifar10_configs.py and per-run files).
#include "nn/model_factory.h"

#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "nn/patch.h"
#include "nn/precond.h"
#include "sde/sde.h"

namespace scorch {

NetworkKind network_kind(ModelName name) {
  switch (name) {
    case ModelName::kMlp:
      return NetworkKind::kMLP;
    case ModelName::kDdpm:
      return NetworkKind::kDDPM;
    case ModelName::kNcsnpp:
      return NetworkKind::kNCSNpp;
    case ModelName::kAdm:
      return NetworkKind::kADM;
    case ModelName::kNcsn:
    case ModelName::kNcsnv2_64:
    case ModelName::kNcsnv2_128:
    case ModelName::kNcsnv2_256:
      return NetworkKind::kNCSN;
    case ModelName::kEdm2:
      return NetworkKind::kEDM2;
    case ModelName::kAnalytic:
      break;
  }
  fail("model.name=analytic is the exact score of a Gaussian mixture and has nothing to "
       "train; use it with `scorch sample` or `scorch likelihood`");
}

MLPOptions mlp_options(const Config& config) {
  return MLPOptions(config.data.dim)
      .hidden(config.model.mlp_hidden)
      .layers(config.model.mlp_layers)
      .num_classes(config.data.num_classes)
      .scale_by_sigma(config.model.scale_by_sigma);
}

namespace {
// The options DDPM and NCSN++ share (same TORCH_ARG names in both).
template <typename Options>
Options unet_options(const Config& config) {
  const auto& m = config.model;
  SCORCH_CHECK(m.conv_size == 3, "model.conv_size ", m.conv_size,
               " is not supported: the U-Nets use 3x3 convolutions (set 3)");
  Options o;
  o.image_size(m.patch_size > 0 ? m.patch_size : config.data.image_size)
      .num_channels(config.data.num_channels)
      .in_channels(config.data.num_channels + (m.patch_size > 0 ? 2 : 0))
      .centered(config.data.centered)
      .num_classes(config.data.num_classes)
      .nf(m.nf)
      .ch_mult(m.ch_mult)
      .num_res_blocks(m.num_res_blocks)
      .attn_resolutions(m.attn_resolutions)
      .dropout(m.dropout)
      .resamp_with_conv(m.resamp_with_conv)
      .conditional(m.conditional)
      .nonlinearity(m.nonlinearity)
      .scale_by_sigma(m.scale_by_sigma)
      .sigma_min(m.sigma_min)
      .sigma_max(m.sigma_max)
      .num_scales(m.num_scales)
      .checkpointing(m.checkpointing);
  return o;
}
}  // namespace

DDPMOptions ddpm_options(const Config& config) { return unet_options<DDPMOptions>(config); }

NCSNppOptions ncsnpp_options(const Config& config) {
  const auto& m = config.model;
  return unet_options<NCSNppOptions>(config)
      .fir(m.fir)
      .fir_kernel(m.fir_kernel)
      .skip_rescale(m.skip_rescale)
      .resblock_type(m.resblock_type)
      .progressive(m.progressive)
      .progressive_input(m.progressive_input)
      .progressive_combine(m.progressive_combine)
      .init_scale(m.init_scale)
      .embedding_type(m.embedding_type)
      .fourier_scale(m.fourier_scale)
      .edm_conditioning(m.precond != Precond::kNone);
}

ADMOptions adm_options(const Config& config) {
  const auto& m = config.model;
  const auto& d = config.data;
  const int64_t size = m.patch_size > 0 ? m.patch_size : d.image_size;
  std::vector<int64_t> rates;
  for (int64_t r : m.attn_resolutions) {
    SCORCH_CHECK(r > 0 && size % r == 0, "model.attn_resolutions entry ", r,
                 " does not divide the network's input size ", size,
                 m.patch_size > 0 ? " (model.patch_size)" : " (data.image_size)");
    rates.push_back(size / r);
  }
  ADMOptions o;
  o.dims(m.dims)
      .image_size(size)
      .in_channels(d.num_channels + (m.patch_size > 0 ? 2 : 0))
      .out_channels(d.num_channels)
      .model_channels(m.nf)
      .num_res_blocks(m.num_res_blocks)
      .attention_ds(rates)
      .dropout(m.dropout)
      .channel_mult(m.ch_mult)
      .conv_resample(m.resamp_with_conv)
      .num_classes(d.num_classes)
      .num_heads(m.num_heads)
      .num_head_channels(m.num_head_channels)
      .num_heads_upsample(m.num_heads_upsample)
      .use_scale_shift_norm(m.use_scale_shift_norm)
      .resblock_updown(m.resblock_updown)
      .use_new_attention_order(m.use_new_attention_order)
      .centered(d.centered)
      .checkpointing(m.checkpointing);
  if (m.scale_by_sigma) {
    o.scale_by_sigma(true);
    if (!config.training.continuous) {  // time_cond indexes the levels, 0 = sigma_max
      const auto table = torch::exp(torch::linspace(std::log(m.sigma_max), std::log(m.sigma_min),
                                                    m.num_scales, torch::kDouble));
      o.sigmas(std::vector<double>(table.data_ptr<double>(),
                                   table.data_ptr<double>() + m.num_scales));
    }
  }
  if (m.dims == 1) o.flat_shape({d.num_channels, d.image_size});
  if (m.dims == 3) o.flat_shape({d.num_channels, d.depth, d.image_size, d.image_size});
  check_adm_options(o);
  return o;
}

NCSNOptions ncsn_options(const Config& config) {
  const auto& m = config.model;
  NCSNVariant variant = NCSNVariant::kV1;
  switch (m.name) {
    case ModelName::kNcsnv2_64:
      variant = NCSNVariant::kV2_64;
      break;
    case ModelName::kNcsnv2_128:
      variant = NCSNVariant::kV2_128;
      break;
    case ModelName::kNcsnv2_256:
      variant = NCSNVariant::kV2_256;
      break;
    default:
      TORCH_CHECK(m.name == ModelName::kNcsn, "ncsn_options: model.name=", m.name, " is not NCSN");
  }
  return NCSNOptions()
      .variant(variant)
      .image_size(config.data.image_size)
      .num_channels(config.data.num_channels)
      .centered(config.data.centered)
      .nf(m.nf)
      .nonlinearity(m.nonlinearity)
      .sigma_min(m.sigma_min)
      .sigma_max(m.sigma_max)
      .num_scales(m.num_scales)
      .checkpointing(m.checkpointing);
}

EDM2Options edm2_options(const Config& config) {
  const auto& m = config.model;
  EDM2Options o;
  o.image_size(config.data.image_size)
      .img_channels(config.data.num_channels)
      .label_dim(config.data.num_classes)
      .model_channels(m.nf)
      .channel_mult(m.edm2_channel_mult)
      .channel_mult_noise(m.edm2_channel_mult_noise)
      .channel_mult_emb(m.edm2_channel_mult_emb)
      .num_blocks(m.edm2_num_blocks)
      .attn_resolutions(m.edm2_attn_resolutions)
      .channels_per_head(m.edm2_channels_per_head)
      .dropout(m.dropout)
      .logvar_channels(m.edm2_logvar_channels)
      .sigma_data(m.sigma_data);
  check_edm2_options(o);
  return o;
}

namespace {
// The network itself, or with model.patch_size the patch wrapper around it
// (its input then has two coordinate channels more).
ScoreNet patch_if_configured(const Config& config, ScoreNet net) {
  return config.model.patch_size > 0 ? make_patch_score_net(config, std::move(net)) : net;
}
}  // namespace

namespace {
// model.channels_last: 4-D weights (convolutions) in NHWC order; Module::to
// keeps the layout when the network moves to its device.
ScoreNet with_layout(const Config& config, ScoreNet net) {
  if (!config.model.channels_last) return net;
  torch::NoGradGuard no_grad;
  for (auto& p : net->parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
  return net;
}

ScoreNet build_score_net(const Config& config) {
  switch (network_kind(config.model.name)) {
    case NetworkKind::kMLP:
      return std::make_shared<MLPImpl>(mlp_options(config));
    case NetworkKind::kDDPM:
      return patch_if_configured(config, std::make_shared<DDPMImpl>(ddpm_options(config)));
    case NetworkKind::kNCSNpp:
      return patch_if_configured(config, std::make_shared<NCSNppImpl>(ncsnpp_options(config)));
    case NetworkKind::kADM:
      return patch_if_configured(config, std::make_shared<ADMImpl>(adm_options(config)));
    case NetworkKind::kNCSN:
      return std::make_shared<NCSNImpl>(ncsn_options(config));
    case NetworkKind::kEDM2:  // EDM2's Precond, preconditioned already
      return std::make_shared<EDM2PrecondImpl>(edm2_options(config), make_sde(config));
  }
  fail("model.name: unknown network");
}
}  // namespace

PrecondOptions precond_options(const Config& config) {
  PrecondOptions o;
  o.kind = config.model.precond;
  o.sigma_data = config.model.sigma_data;
  o.beta_min = config.model.beta_min;
  o.beta_d = config.model.beta_max - config.model.beta_min;
  return o;
}

ScoreNet make_score_net(const Config& config) {
  auto net = with_layout(config, build_score_net(config));
  if (config.model.precond == Precond::kNone) return net;  // bitwise as without the key
  if (network_kind(config.model.name) == NetworkKind::kEDM2) return net;  // its own Precond
  return make_precond_score_net(precond_options(config), make_sde(config), std::move(net));
}

int64_t count_trainable_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) {
    if (p.requires_grad()) total += p.numel();
  }
  return total;
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) total += p.numel();
  return total;
}

}  // namespace scorch
