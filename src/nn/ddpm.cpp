// DDPM U-Net (see ddpm.h), following score_sde_pytorch models/ddpm.py: the
// modules go into all_modules in the reference's order, so state-dict names
// (all_modules.<i>.*) match a score_sde checkpoint.
#include "nn/ddpm.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "nn/checkpoint.h"
#include "nn/embeddings.h"
#include "nn/mlp.h"

namespace scorch {
namespace {

bool contains(const std::vector<int64_t>& values, int64_t v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

}  // namespace

template <typename M>
M DDPMImpl::add(M module) {
  all_modules_->push_back(module);
  return module;
}

ResBlock DDPMImpl::make_res_block(int64_t in_ch, int64_t out_ch) const {
  return std::make_shared<ResnetBlockDDPMImpl>(
      ResnetBlockDDPMOptions(in_ch, out_ch)
          .temb_dim(options_.conditional() ? 4 * options_.nf() : 0)
          .dropout(options_.dropout())
          .skip_rescale(false)
          .init_scale(0.0)
          .group_rule(GroupRule::kFixed32)
          .act(options_.nonlinearity()));
}

AttnBlock DDPMImpl::make_attn_block(int64_t channels) const {
  return AttnBlock(AttnBlockOptions(channels)
                       .group_rule(GroupRule::kFixed32)
                       .skip_rescale(false)
                       .init_scale(0.0));
}

DDPMImpl::DDPMImpl(const DDPMOptions& options) : options_(options) {
  const auto& o = options_;
  const int64_t nf = o.nf(), channels = o.num_channels();
  const int64_t in_channels = o.in_channels() > 0 ? o.in_channels() : channels;
  const int64_t num_levels = static_cast<int64_t>(o.ch_mult().size());
  SCORCH_CHECK(num_levels >= 1, "model.ch_mult must list at least one level");
  SCORCH_CHECK(o.image_size() % (int64_t{1} << (num_levels - 1)) == 0, "data.image_size (",
               o.image_size(), ") must be divisible by 2^(len(model.ch_mult)-1)");
  SCORCH_CHECK(o.num_classes() == 0 || o.conditional(),
               "data.num_classes > 0 needs model.conditional=true (the class embedding is added "
               "to the time embedding)");

  all_modules_ = register_module("all_modules", torch::nn::ModuleList());
  sigmas_ = register_buffer(
      "sigmas", torch::exp(torch::linspace(std::log(o.sigma_max()), std::log(o.sigma_min()),
                                           o.num_scales(), torch::kFloat64)));
  if (o.conditional()) {
    temb_dense_0_ = add(make_dense(nf, 4 * nf));
    temb_dense_1_ = add(make_dense(4 * nf, 4 * nf));
  }

  const auto resample = ResampleOptions(0).with_conv(o.resamp_with_conv());
  input_conv_ = add(conv3x3(in_channels, nf));
  std::vector<int64_t> hs_c = {nf};
  int64_t in_ch = nf;
  levels_.resize(num_levels);
  for (int64_t level = 0; level < num_levels; ++level) {
    auto& l = levels_[level];
    const bool attention = contains(o.attn_resolutions(), o.image_size() >> level);
    for (int64_t b = 0; b < o.num_res_blocks(); ++b) {
      const int64_t out_ch = nf * o.ch_mult()[level];
      l.down_blocks.push_back(add(make_res_block(in_ch, out_ch)));
      in_ch = out_ch;
      if (attention) l.down_attns.push_back(add(make_attn_block(in_ch)));
      hs_c.push_back(in_ch);
    }
    if (level != num_levels - 1) {
      l.down = add(Downsample(ResampleOptions(resample).in_ch(in_ch).out_ch(in_ch)));
      hs_c.push_back(in_ch);
    }
  }

  in_ch = hs_c.back();
  mid_block_0_ = add(make_res_block(in_ch, in_ch));
  mid_attn_ = add(make_attn_block(in_ch));
  mid_block_1_ = add(make_res_block(in_ch, in_ch));

  for (int64_t level = num_levels - 1; level >= 0; --level) {
    auto& l = levels_[level];
    for (int64_t b = 0; b < o.num_res_blocks() + 1; ++b) {
      const int64_t out_ch = nf * o.ch_mult()[level];
      l.up_blocks.push_back(add(make_res_block(in_ch + hs_c.back(), out_ch)));
      hs_c.pop_back();
      in_ch = out_ch;
    }
    if (contains(o.attn_resolutions(), o.image_size() >> level))
      l.up_attn = add(make_attn_block(in_ch));
    if (level != 0) l.up = add(Upsample(ResampleOptions(resample).in_ch(in_ch).out_ch(in_ch)));
  }
  TORCH_CHECK(hs_c.empty(), "DDPM: skip connections left over");

  out_norm_ = add(make_group_norm(in_ch, GroupRule::kFixed32));
  out_conv_ = add(conv3x3(in_ch, channels, /*init_scale=*/0.0));

  // Scorch's class conditioning (outside all_modules; see embeddings.h).
  if (o.num_classes() > 0) {
    class_embedding_ =
        register_module("class_embedding", torch::nn::Embedding(o.num_classes() + 1, 4 * nf));
  }
}

torch::Tensor DDPMImpl::forward(const torch::Tensor& x_in, const torch::Tensor& time_cond,
                                const torch::Tensor& class_labels) {
  const auto& o = options_;
  const int64_t in_channels = o.in_channels() > 0 ? o.in_channels() : o.num_channels();
  TORCH_CHECK(x_in.dim() == 4 && x_in.size(1) == in_channels, "DDPM expects [B, ", in_channels,
              ", H, W], got ", x_in.sizes());
  TORCH_CHECK(time_cond.dim() == 1 && time_cond.size(0) == x_in.size(0),
              "DDPM expects time_cond [B], got ", time_cond.sizes());
  const auto act = [&](const torch::Tensor& t) { return activate(t, o.nonlinearity()); };

  torch::Tensor temb;
  if (o.conditional()) {
    temb = temb_dense_1_(act(temb_dense_0_(timestep_embedding(time_cond, o.nf()))));
    if (class_embedding_) {
      temb = temb + embed_class_labels(class_embedding_, class_labels, x_in.size(0), temb.device());
    }
  }
  const auto x = o.centered() ? x_in : 2 * x_in - 1.0;
  const bool ckpt_res = is_training() && checkpoint_residual(o.checkpointing());
  const bool ckpt_attn = is_training() && checkpoint_attention(o.checkpointing());

  std::vector<torch::Tensor> hs = {input_conv_(x)};
  for (auto& l : levels_) {
    for (size_t b = 0; b < l.down_blocks.size(); ++b) {
      auto h = run_res_block(l.down_blocks[b], hs.back(), temb, ckpt_res);
      if (!l.down_attns.empty()) h = run_attn_block(l.down_attns[b], h, ckpt_attn);
      hs.push_back(h);
    }
    if (l.down) hs.push_back(l.down(hs.back()));
  }

  auto h = run_res_block(mid_block_0_, hs.back(), temb, ckpt_res);
  h = run_attn_block(mid_attn_, h, ckpt_attn);
  h = run_res_block(mid_block_1_, h, temb, ckpt_res);

  for (auto it = levels_.rbegin(); it != levels_.rend(); ++it) {
    for (auto& block : it->up_blocks) {
      h = run_res_block(block, torch::cat({h, hs.back()}, 1), temb, ckpt_res);
      hs.pop_back();
    }
    if (it->up_attn) h = run_attn_block(it->up_attn, h, ckpt_attn);
    if (it->up) h = it->up(h);
  }
  TORCH_CHECK(hs.empty(), "DDPM: skip connections left over");

  h = out_conv_(act(out_norm_(h)));
  if (o.scale_by_sigma()) {
    h = h / sigmas_.index({time_cond.to(torch::kLong)}).to(h.dtype()).reshape({-1, 1, 1, 1});
  }
  return h;
}

}  // namespace scorch
