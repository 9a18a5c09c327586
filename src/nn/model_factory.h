// Builds score networks from the typed config: the model.* / data.* keys map
// onto each network's options here and nowhere else (make_score_net itself is
// declared in nn/score_net.h).
//
//   Config c = load_config("configs/ve/cifar10_ncsnpp_continuous.yaml");
//   ScoreNet net = make_score_net(c);               // NCSN++, 62,758,787 params
//   NCSNppOptions o = ncsnpp_options(c).nf(64);     // or tweak options first
#pragma once

#include <string>

#include "nn/adm.h"
#include "nn/ddpm.h"
#include "nn/edm2.h"
#include "nn/mlp.h"
#include "nn/ncsn.h"
#include "nn/ncsnpp.h"
#include "nn/precond.h"
#include "nn/score_net.h"

namespace scorch {

struct Config;

// The network model.name selects.
enum class NetworkKind { kMLP, kDDPM, kNCSNpp, kADM, kNCSN, kEDM2 };

// The network class of a model.name; throws scorch::Error for analytic
// (nothing to build or train).
NetworkKind network_kind(ModelName name);

// Options from the config (model.*, data.*), validated (core/config.h
// validate) before. With model.patch_size the U-Nets (ddpm, ncsnpp, adm) are
// built for P x P inputs with two coordinate channels more, and
// make_score_net wraps them in a PatchScoreNet (nn/patch.h). Throw
// scorch::Error for values the networks cannot honour (model.conv_size other
// than 3).
MLPOptions mlp_options(const Config& config);
DDPMOptions ddpm_options(const Config& config);
NCSNppOptions ncsnpp_options(const Config& config);
// model.name=adm: model.nf -> model_channels, ch_mult -> channel_mult,
// attn_resolutions (sizes) -> attention rates (network input size / size),
// resamp_with_conv -> conv_resample, data.num_classes -> num_classes; dims,
// num_heads, num_head_channels, num_heads_upsample, use_scale_shift_norm,
// resblock_updown and use_new_attention_order keep their names. With
// model.patch_size the network's input is the patch plus two coordinate channels.
ADMOptions adm_options(const Config& config);
// model.name ncsn | ncsnv2_64 | ncsnv2_128 | ncsnv2_256 (model.normalization
// must be InstanceNorm++, data.num_classes 0, training.continuous false).
NCSNOptions ncsn_options(const Config& config);
// model.name=edm2: data.image_size, data.num_channels -> img_channels,
// data.num_classes -> label_dim, model.nf -> model_channels, model.dropout,
// model.sigma_data, and model.edm2_* -> channel_mult, channel_mult_noise,
// channel_mult_emb, num_blocks, attn_resolutions, channels_per_head,
// logvar_channels. make_score_net builds an EDM2Precond (its own
// preconditioning: model.precond=edm, which it does not wrap again) for the
// training SDE.
EDM2Options edm2_options(const Config& config);

// model.precond, model.sigma_data; VP's t(sigma) uses model.beta_min and
// beta_d = model.beta_max - model.beta_min (EDM's 0.1 and 19.9 at the defaults).
// With model.precond other than none, make_score_net wraps the network in a
// PrecondScoreNet (nn/precond.h) for the training SDE.
PrecondOptions precond_options(const Config& config);

// Total parameter count including frozen ones (e.g. NCSN++'s Fourier W).
int64_t count_parameters(const torch::nn::Module& module);

}  // namespace scorch
