// NCSN++ / DDPM++ U-Net (see ncsnpp.h), following score_sde_pytorch
// models/ncsnpp.py module by module: construction pushes modules into
// all_modules in the reference's order; forward walks the same graph.
#include "nn/ncsnpp.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "nn/checkpoint.h"
#include "nn/mlp.h"

namespace scorch {
namespace {

bool contains(const std::vector<int64_t>& values, int64_t v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

torch::Tensor merge_pyramid(const torch::Tensor& a, const torch::Tensor& b, bool skip_rescale) {
  return skip_rescale ? (a + b) / std::sqrt(2.0) : a + b;
}

}  // namespace

template <typename M>
M NCSNppImpl::add(M module) {
  all_modules_->push_back(module);
  return module;
}

ResBlock NCSNppImpl::make_res_block(int64_t in_ch, int64_t out_ch, bool up, bool down) const {
  const auto& o = options_;
  const int64_t temb_dim = o.conditional() ? 4 * o.nf() : 0;
  if (o.resblock_type() == ResBlockType::kDDPM) {
    return std::make_shared<ResnetBlockDDPMImpl>(ResnetBlockDDPMOptions(in_ch, out_ch)
                                                     .temb_dim(temb_dim)
                                                     .dropout(o.dropout())
                                                     .skip_rescale(o.skip_rescale())
                                                     .init_scale(o.init_scale())
                                                     .act(o.nonlinearity()));
  }
  return std::make_shared<ResnetBlockBigGANImpl>(ResnetBlockBigGANOptions(in_ch, out_ch)
                                                     .temb_dim(temb_dim)
                                                     .up(up)
                                                     .down(down)
                                                     .dropout(o.dropout())
                                                     .fir(o.fir())
                                                     .fir_kernel(o.fir_kernel())
                                                     .skip_rescale(o.skip_rescale())
                                                     .init_scale(o.init_scale())
                                                     .act(o.nonlinearity()));
}

AttnBlock NCSNppImpl::make_attn_block(int64_t channels) const {
  return AttnBlock(AttnBlockOptions(channels)
                       .skip_rescale(options_.skip_rescale())
                       .init_scale(options_.init_scale()));
}

NCSNppImpl::NCSNppImpl(const NCSNppOptions& options) : options_(options) {
  // #lizard forgives: the layers in the order of score_sde ncsnpp.py NCSNpp.__init__, line by line
  const auto& o = options_;
  const int64_t nf = o.nf(), channels = o.num_channels();
  const int64_t in_channels = o.in_channels() > 0 ? o.in_channels() : channels;
  const int64_t levels = static_cast<int64_t>(o.ch_mult().size());
  SCORCH_CHECK(levels >= 1, "model.ch_mult must list at least one level");
  SCORCH_CHECK(o.image_size() % (int64_t{1} << (levels - 1)) == 0, "data.image_size (",
               o.image_size(), ") must be divisible by 2^(len(model.ch_mult)-1)");
  SCORCH_CHECK(o.num_classes() == 0 || o.conditional(),
               "data.num_classes > 0 needs model.conditional=true (the class embedding is added "
               "to the time embedding)");
  std::vector<int64_t> resolutions;
  for (int64_t i = 0; i < levels; ++i) resolutions.push_back(o.image_size() >> i);

  all_modules_ = register_module("all_modules", torch::nn::ModuleList());
  // Float64, like the reference's torch.tensor(np.exp(np.linspace(...))).
  sigmas_ = register_buffer(
      "sigmas", torch::exp(torch::linspace(std::log(o.sigma_max()), std::log(o.sigma_min()),
                                           o.num_scales(), torch::kFloat64)));

  // Noise-level embedding.
  int64_t embed_dim = nf;
  if (o.embedding_type() == EmbeddingType::kFourier) {
    fourier_ = add(GaussianFourierProjection(nf, o.fourier_scale()));
    embed_dim = 2 * nf;
  }
  if (o.conditional()) {
    temb_dense_0_ = add(make_dense(embed_dim, 4 * nf));
    temb_dense_1_ = add(make_dense(4 * nf, 4 * nf));
  }

  // Encoder.
  const ResampleOptions resample =
      ResampleOptions(0).with_conv(o.resamp_with_conv()).fir(o.fir()).fir_kernel(o.fir_kernel());
  // Parameter-free pyramid resamplers (input_skip / output_skip), registered
  // under the reference's attribute names; they hold no state.
  if (o.progressive_input() == ProgressiveInput::kInputSkip) {
    pyramid_downsample_ =
        register_module("pyramid_downsample",
                        Downsample(ResampleOptions(resample).in_ch(in_channels).with_conv(false)));
  }
  if (o.progressive() == ProgressiveOutput::kOutputSkip) {
    pyramid_upsample_ = register_module(
        "pyramid_upsample", Upsample(ResampleOptions(resample).in_ch(channels).with_conv(false)));
  }
  int64_t input_pyramid_ch = in_channels;
  input_conv_ = add(conv3x3(in_channels, nf));
  std::vector<int64_t> hs_c = {nf};
  int64_t in_ch = nf;
  for (int64_t level = 0; level < levels; ++level) {
    DownLevel d;
    const bool attention = contains(o.attn_resolutions(), resolutions[level]);
    for (int64_t b = 0; b < o.num_res_blocks(); ++b) {
      const int64_t out_ch = nf * o.ch_mult()[level];
      d.blocks.push_back(add(make_res_block(in_ch, out_ch)));
      in_ch = out_ch;
      if (attention) d.attns.push_back(add(make_attn_block(in_ch)));
      hs_c.push_back(in_ch);
    }
    if (level != levels - 1) {
      if (o.resblock_type() == ResBlockType::kDDPM) {
        d.down = add(Downsample(ResampleOptions(resample).in_ch(in_ch).out_ch(in_ch)));
      } else {
        d.down_block = add(make_res_block(in_ch, in_ch, /*up=*/false, /*down=*/true));
      }
      if (o.progressive_input() == ProgressiveInput::kInputSkip) {
        d.combine = add(Combine(input_pyramid_ch, in_ch, o.progressive_combine()));
        if (o.progressive_combine() == CombineMethod::kCat) in_ch *= 2;
      } else if (o.progressive_input() == ProgressiveInput::kResidual) {
        d.pyramid_down = add(Downsample(
            ResampleOptions(resample).in_ch(input_pyramid_ch).out_ch(in_ch).with_conv(true)));
        input_pyramid_ch = in_ch;
      }
      hs_c.push_back(in_ch);
    }
    down_.push_back(std::move(d));
  }

  // Middle.
  in_ch = hs_c.back();
  mid_block_0_ = add(make_res_block(in_ch, in_ch));
  mid_attn_ = add(make_attn_block(in_ch));
  mid_block_1_ = add(make_res_block(in_ch, in_ch));

  // Decoder.
  int64_t pyramid_ch = 0;
  for (int64_t level = levels - 1; level >= 0; --level) {
    UpLevel u;
    for (int64_t b = 0; b < o.num_res_blocks() + 1; ++b) {
      const int64_t out_ch = nf * o.ch_mult()[level];
      u.blocks.push_back(add(make_res_block(in_ch + hs_c.back(), out_ch)));
      hs_c.pop_back();
      in_ch = out_ch;
    }
    if (contains(o.attn_resolutions(), resolutions[level])) u.attn = add(make_attn_block(in_ch));
    if (o.progressive() != ProgressiveOutput::kNone) {
      const bool output_skip = o.progressive() == ProgressiveOutput::kOutputSkip;
      if (level == levels - 1 || output_skip) {
        // The pyramid head: GroupNorm + conv to the image (output_skip) or
        // to in_ch features (residual, top level only).
        u.pyramid_norm = add(make_group_norm(in_ch, GroupRule::kQuarterUpTo32));
        u.pyramid_conv =
            add(output_skip ? conv3x3(in_ch, channels, o.init_scale()) : conv3x3(in_ch, in_ch));
        pyramid_ch = output_skip ? channels : in_ch;
      } else {
        u.pyramid_up = add(
            Upsample(ResampleOptions(resample).in_ch(pyramid_ch).out_ch(in_ch).with_conv(true)));
        pyramid_ch = in_ch;
      }
    }
    if (level != 0) {
      if (o.resblock_type() == ResBlockType::kDDPM) {
        u.up = add(Upsample(ResampleOptions(resample).in_ch(in_ch).out_ch(in_ch)));
      } else {
        u.up_block = add(make_res_block(in_ch, in_ch, /*up=*/true, /*down=*/false));
      }
    }
    up_.push_back(std::move(u));
  }
  TORCH_CHECK(hs_c.empty(), "NCSN++: skip connections left over");

  if (o.progressive() != ProgressiveOutput::kOutputSkip) {
    out_norm_ = add(make_group_norm(in_ch, GroupRule::kQuarterUpTo32));
    out_conv_ = add(conv3x3(in_ch, channels, o.init_scale()));
  }

  // Scorch's class conditioning, outside all_modules so that the reference's
  // indices (and parameter counts with num_classes = 0) stay as they are.
  if (o.num_classes() > 0 && o.edm_conditioning()) {
    label_map_ = register_module("label_map", make_dense(o.num_classes(), embed_dim));
  } else if (o.num_classes() > 0) {
    class_embedding_ =
        register_module("class_embedding", torch::nn::Embedding(o.num_classes() + 1, 4 * nf));
  }
}

torch::Tensor NCSNppImpl::time_embedding(const torch::Tensor& time_cond,
                                         const torch::Tensor& class_labels, int64_t batch) {
  if (!options_.conditional()) return {};
  const bool edm = options_.edm_conditioning();
  torch::Tensor temb = options_.embedding_type() == EmbeddingType::kFourier
                           ? fourier_(edm ? time_cond : torch::log(time_cond))
                           : timestep_embedding(time_cond, options_.nf());
  if (label_map_) {
    const int64_t k = options_.num_classes();
    torch::Tensor one_hot = torch::zeros({batch, k}, temb.options());
    if (class_labels.defined()) {
      TORCH_CHECK(class_labels.dim() == 1 && class_labels.size(0) == batch,
                  "class labels must be [B] with B = ", batch, ", got ", class_labels.sizes());
      // Index k (the null class) is the last column, dropped: a zero vector.
      one_hot = torch::one_hot(class_labels.to(temb.device(), torch::kLong), k + 1)
                    .slice(1, 0, k)
                    .to(temb.scalar_type());
    }
    temb = temb + label_map_(one_hot * std::sqrt(static_cast<double>(k)));
  }
  temb = temb_dense_1_(activate(temb_dense_0_(temb), options_.nonlinearity()));
  if (class_embedding_) {
    temb = temb + embed_class_labels(class_embedding_, class_labels, batch, temb.device());
  }
  return temb;
}

torch::Tensor NCSNppImpl::forward(const torch::Tensor& x_in, const torch::Tensor& time_cond,
                                  const torch::Tensor& class_labels) {
  const auto& o = options_;
  const int64_t in_channels = o.in_channels() > 0 ? o.in_channels() : o.num_channels();
  TORCH_CHECK(x_in.dim() == 4 && x_in.size(1) == in_channels, "NCSN++ expects [B, ", in_channels,
              ", H, W], got ", x_in.sizes());
  TORCH_CHECK(time_cond.dim() == 1 && time_cond.size(0) == x_in.size(0),
              "NCSN++ expects time_cond [B], got ", time_cond.sizes());
  const auto act = [&](const torch::Tensor& t) { return activate(t, o.nonlinearity()); };
  const bool residual_input = o.progressive_input() == ProgressiveInput::kResidual;
  const auto temb = time_embedding(time_cond, class_labels, x_in.size(0));

  // Inputs in [0, 1] are mapped to [-1, 1].
  const auto x = o.centered() ? x_in : 2 * x_in - 1.0;
  const bool ckpt_res = is_training() && checkpoint_residual(o.checkpointing());
  const bool ckpt_attn = is_training() && checkpoint_attention(o.checkpointing());

  // Encoder.
  torch::Tensor input_pyramid = x;
  std::vector<torch::Tensor> hs = {input_conv_(x)};
  for (size_t level = 0; level < down_.size(); ++level) {
    auto& d = down_[level];
    for (size_t b = 0; b < d.blocks.size(); ++b) {
      auto h = run_res_block(d.blocks[b], hs.back(), temb, ckpt_res);
      if (!d.attns.empty()) h = run_attn_block(d.attns[b], h, ckpt_attn);
      hs.push_back(h);
    }
    if (level + 1 == down_.size()) break;
    auto h = d.down ? d.down(hs.back()) : run_res_block(d.down_block, hs.back(), temb, ckpt_res);
    if (d.combine) {
      input_pyramid = pyramid_downsample_(input_pyramid);
      h = d.combine(input_pyramid, h);
    } else if (residual_input) {
      input_pyramid = merge_pyramid(d.pyramid_down(input_pyramid), h, o.skip_rescale());
      h = input_pyramid;
    }
    hs.push_back(h);
  }

  // Middle.
  auto h = run_res_block(mid_block_0_, hs.back(), temb, ckpt_res);
  h = run_attn_block(mid_attn_, h, ckpt_attn);
  h = run_res_block(mid_block_1_, h, temb, ckpt_res);

  // Decoder.
  torch::Tensor pyramid;
  for (auto& u : up_) {
    for (auto& block : u.blocks) {
      h = run_res_block(block, torch::cat({h, hs.back()}, 1), temb, ckpt_res);
      hs.pop_back();
    }
    if (u.attn) h = run_attn_block(u.attn, h, ckpt_attn);
    if (u.pyramid_norm) {
      auto head = u.pyramid_conv(act(u.pyramid_norm(h)));
      if (pyramid.defined() && o.progressive() == ProgressiveOutput::kOutputSkip) {
        pyramid = pyramid_upsample_(pyramid) + head;
      } else {
        pyramid = head;
      }
    } else if (u.pyramid_up) {
      pyramid = merge_pyramid(u.pyramid_up(pyramid), h, o.skip_rescale());
      h = pyramid;
    }
    if (u.up) h = u.up(h);
    if (u.up_block) h = run_res_block(u.up_block, h, temb, ckpt_res);
  }
  TORCH_CHECK(hs.empty(), "NCSN++: skip connections left over");

  h = o.progressive() == ProgressiveOutput::kOutputSkip ? pyramid : out_conv_(act(out_norm_(h)));

  if (o.scale_by_sigma()) {
    torch::Tensor sigma = o.embedding_type() == EmbeddingType::kFourier
                              ? time_cond
                              : sigmas_.index({time_cond.to(torch::kLong)});
    h = h / sigma.to(h.dtype()).reshape({-1, 1, 1, 1});
  }
  return h;
}

}  // namespace scorch
