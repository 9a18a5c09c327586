// The networks' attention blocks against the math in float64: score_sde's
// AttnBlock (nn/layers.h; DDPM's and DDPM++ / NCSN++'s options) and ADM's
// AttentionBlock (nn/adm.cpp; legacy and new q/k/v order), in float32 on the
// CPU. Output, input gradient and parameter gradients must agree within 1e-5
// of the reference's largest entry. On LibTorch >= 2.1 this checks the fused
// qkv projection and SDPA (compat::attention); on 1.13 the bmm + float32
// softmax math. NCSN / NCSNv2 (nn/ncsn.h) have no attention.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/compat.h"
#include "nn/adm.h"
#include "nn/layers.h"

namespace scorch {
namespace {

constexpr double kTolerance = 1e-5;

// max |a - b| / scale, b the float64 reference; scale max |b| unless given.
double relative_error(const torch::Tensor& a, const torch::Tensor& b, double scale = 0) {
  if (scale == 0) scale = b.abs().max().item<double>();
  return (a.to(torch::kDouble) - b).abs().max().item<double>() / scale;
}

// softmax(q^T k * scale) v per batch entry: q, k, v [N, d, L] (channels
// first, as both references lay them out) -> [N, d, L].
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, double scale) {
  const auto weights = torch::softmax(torch::bmm(q.transpose(1, 2), k) * scale, -1);
  return torch::bmm(v, weights.transpose(1, 2));
}

// Every parameter set to 0.5 N(0, 1) (the output projections start at zero,
// which would hide the attention), as float32 and as float64 leaves.
std::map<std::string, torch::Tensor> randomize(torch::nn::Module& block) {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> reference;
  for (auto& p : block.named_parameters()) {
    p.value().copy_(0.5 * torch::randn_like(p.value()));
    reference[p.key()] = p.value().to(torch::kDouble).detach().requires_grad_(true);
  }
  return reference;
}

// Backpropagates sum(out * probe) through both and compares output, input
// gradient and every parameter gradient.
void expect_close(torch::nn::Module& block, const std::map<std::string, torch::Tensor>& ref_params,
                  const torch::Tensor& x, const torch::Tensor& out, const torch::Tensor& ref_x,
                  const torch::Tensor& ref_out, const std::string& what) {
  const auto probe = torch::randn_like(ref_out);
  (out * probe.to(out.scalar_type())).sum().backward();
  (ref_out * probe).sum().backward();
  double worst = relative_error(out, ref_out);
  EXPECT_LT(worst, kTolerance) << what << ": output";
  const double grad_x = relative_error(x.grad(), ref_x.grad());
  EXPECT_LT(grad_x, kTolerance) << what << ": input gradient";
  worst = std::max(worst, grad_x);
  // A key bias adds q . b_k to every logit of a row, which softmax ignores:
  // its gradient is zero up to rounding, so it is measured against the
  // largest parameter gradient of the block instead of its own.
  double largest = 0;
  for (const auto& p : ref_params)
    largest = std::max(largest, p.second.grad().abs().max().item<double>());
  for (const auto& p : block.named_parameters()) {
    const auto& ref_grad = ref_params.at(p.key()).grad();
    const double own = ref_grad.abs().max().item<double>();
    const double e =
        relative_error(p.value().grad(), ref_grad, own < 1e-9 * largest ? largest : own);
    EXPECT_LT(e, kTolerance) << what << ": gradient of " << p.key();
    worst = std::max(worst, e);
  }
  std::cout << "[          ] " << what << (compat::has_sdpa() ? " (SDPA)" : " (bmm + softmax)")
            << ": max relative difference " << worst << "\n";
}

TEST(Attention, ScoreSdeBlockMatchesFloat64Math) {
  struct Case {
    const char* name;
    AttnBlockOptions options;
  };
  const Case cases[] = {
      {"DDPM AttnBlock", AttnBlockOptions(64).group_rule(GroupRule::kFixed32)},
      {"DDPM++/NCSN++ AttnBlockpp", AttnBlockOptions(48).skip_rescale(true).init_scale(0.0)},
  };
  torch::manual_seed(0);
  for (const auto& c : cases) {
    AttnBlock block(c.options);
    const auto params = randomize(*block);
    const int64_t channels = c.options.channels();
    const auto x = torch::randn({2, channels, 8, 6}).requires_grad_(true);
    const auto out = block(x);

    // out = skip(x, NIN_3(attention(NIN_0..2(GroupNorm(x))))) in float64.
    const auto ref_x = x.detach().to(torch::kDouble).requires_grad_(true);
    const auto groups = group_count(channels, c.options.group_rule());
    const auto normed = torch::group_norm(ref_x, groups, params.at("GroupNorm_0.weight"),
                                          params.at("GroupNorm_0.bias"), 1e-6);
    const auto nin = [&](const torch::Tensor& t, const std::string& name) {  // [B, C, L]
      return (torch::matmul(t.flatten(2).transpose(1, 2), params.at(name + ".W")) +
              params.at(name + ".b"))
          .transpose(1, 2);
    };
    const auto h = reference_attention(nin(normed, "NIN_0"), nin(normed, "NIN_1"),
                                       nin(normed, "NIN_2"), 1.0 / std::sqrt(channels));
    auto ref_out = ref_x + nin(h, "NIN_3").reshape_as(ref_x);
    if (c.options.skip_rescale()) ref_out = ref_out / std::sqrt(2.0);
    expect_close(*block, params, x, out, ref_x, ref_out, c.name);
  }
}

TEST(Attention, AdmBlockMatchesFloat64Math) {
  torch::manual_seed(1);
  for (const bool new_order : {false, true}) {
    // One level, so the middle block's attention ("middle_block.1") over 8 x 6
    // positions, 64 channels in 2 heads of 32.
    ADM net(ADMOptions()
                .image_size(8)
                .model_channels(64)
                .num_res_blocks(1)
                .channel_mult({1})
                .attention_ds({})
                .num_heads(2)
                .use_new_attention_order(new_order));
    const auto block =
        std::dynamic_pointer_cast<ADMLayerImpl>(net->named_modules()["middle_block.1"]);
    ASSERT_TRUE(block);
    const auto params = randomize(*block);
    const int64_t channels = 64, heads = 2, ch = channels / heads;
    const auto x = torch::randn({2, channels, 8, 6}).requires_grad_(true);
    const auto out = block->forward(x, {});

    // guided-diffusion's AttentionBlock: qkv = conv1d(GroupNorm32(x)), per head
    // softmax(q^T k / sqrt(ch)) v, x + proj_out(h), in float64.
    const auto ref_x = x.detach().to(torch::kDouble).requires_grad_(true);
    const auto flat = ref_x.flatten(2);  // [B, C, T]
    const int64_t b = flat.size(0), t = flat.size(2);
    const auto normed =
        torch::group_norm(flat, 32, params.at("norm.weight"), params.at("norm.bias"), 1e-5);
    const auto qkv = torch::conv1d(normed, params.at("qkv.weight"), params.at("qkv.bias"));
    std::vector<torch::Tensor> parts;
    if (new_order) {
      for (const auto& part : qkv.chunk(3, 1)) parts.push_back(part.reshape({b * heads, ch, t}));
    } else {
      parts = qkv.reshape({b * heads, 3 * ch, t}).split(ch, 1);
    }
    const auto h = reference_attention(parts[0], parts[1], parts[2], 1.0 / std::sqrt(ch))
                       .reshape({b, channels, t});
    const auto ref_out =
        (flat + torch::conv1d(h, params.at("proj_out.weight"), params.at("proj_out.bias")))
            .reshape_as(ref_x);
    expect_close(*block, params, x, out, ref_x, ref_out,
                 new_order ? "ADM AttentionBlock (new order)" : "ADM AttentionBlock (legacy)");
  }
}

}  // namespace
}  // namespace scorch
