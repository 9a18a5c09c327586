// Activation checkpointing (nn/checkpoint.h, model.checkpointing). Each
// block alone (DDPM, BigGAN, attention, RefineNet residual; dropout 0.5) gives
// the plain block's gradients bit for bit, in float32 and under bfloat16
// autocast. For tiny configurations of every network family with blocks
// (DDPM, DDPM++, NCSN++, ADM, NCSN, NCSNv2; dropout 0.3 where the network has
// it), a training forward/backward with checkpointing=attention gives the
// plain step's gradients bit for bit, and with blocks within 1e-6 relative in
// float32 and 2e-2 under bfloat16 autocast (autograd sums a skip-connected
// block input's gradient in another order; measured 1e-7 to 3e-7 and 1e-3 to
// 7e-3). The recompute leaves the random stream where the plain step leaves
// it; the graph holds exactly one checkpoint node per checkpointed block (none
// with checkpointing=none, in eval mode or without grad); bad configs name
// the key.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/compat.h"
#include "core/config.h"
#include "core/error.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/model_factory.h"
#include "nn/refinenet.h"

namespace scorch {
namespace {

std::string config_path(const std::string& name) {
  return std::string(SCORCH_SOURCE_DIR) + "/configs/" + name + ".yaml";
}

struct Family {
  const char* tag;
  const char* config;
  std::vector<std::string> overrides;
  int64_t residual_blocks;   // checkpoint nodes of checkpointing=blocks, less attention
  int64_t attention_blocks;  // checkpoint nodes of checkpointing=attention
  // time_cond for a batch of 3 as the network takes it.
  std::function<torch::Tensor()> time_cond;
};

const std::vector<std::string> kTinyUNet = {"data.image_size=16", "model.nf=32",
                                            "model.ch_mult=[1,2]", "model.num_res_blocks=1",
                                            "model.attn_resolutions=[8]", "model.init_scale=1.0",
                                            "model.dropout=0.3"};

std::vector<std::string> with(std::vector<std::string> base, std::vector<std::string> extra) {
  base.insert(base.end(), extra.begin(), extra.end());
  return base;
}

std::vector<Family> families() {
  const auto labels = [] { return torch::tensor({3.0f, 250.0f, 999.0f}); };
  const auto sigmas = [] { return torch::tensor({0.02f, 1.5f, 40.0f}); };
  const auto levels = [] { return torch::tensor({0, 3, 9}, torch::kLong); };
  return {
      // DDPM: 2 levels x (1 down + 2 up) blocks + 2 middle; attention at 8 px
      // (one down, one up) + the middle one.
      {"ddpm", "vp/cifar10_ddpm", kTinyUNet, 8, 3, labels},
      // DDPM++ (BigGAN blocks without FIR): 8 blocks + a down and an up block.
      {"ddpmpp", "vp/cifar10_ddpmpp_continuous", kTinyUNet, 10, 3, labels},
      // NCSN++ (BigGAN blocks with FIR resampling blocks, residual input
      // pyramid, Fourier features): 8 blocks + a down and an up block.
      {"ncsnpp", "ve/cifar10_ncsnpp_continuous", with(kTinyUNet, {"model.nf=16"}), 10, 3, sigmas},
      // ADM with residual up/down-sampling and scale-shift norm: 2 input + a
      // down block, 2 middle, 4 output + an up block; attention in the 8 px
      // level's input block, the middle and its 2 output blocks.
      {"adm", "vp/cifar10_adm",
       with(kTinyUNet, {"model.num_heads=2", "model.resblock_updown=true"}), 10, 4, labels},
      // NCSN and NCSNv2 (no dropout, no attention): 4 levels x 2 residual
      // blocks + 4 RefineNet blocks.
      {"ncsn", "ve/ncsn/cifar10", {"data.image_size=16", "model.nf=8"}, 12, 0, levels},
      {"ncsnv2", "ve/ncsnv2/cifar10", {"data.image_size=16", "model.nf=8"}, 12, 0, levels},
  };
}

void PrintTo(const Family& f, std::ostream* out) { *out << f.tag; }

Config family_config(const Family& f, Checkpointing mode) {
  return load_config(config_path(f.config),
                     with(f.overrides, {std::string("model.checkpointing=") + choice_name(mode)}));
}

// Nodes of the checkpoint function in the graph behind `t`.
int64_t checkpoint_nodes(const torch::Tensor& t) {
  int64_t count = 0;
  std::unordered_set<torch::autograd::Node*> seen;
  std::vector<torch::autograd::Node*> todo = {t.grad_fn().get()};
  while (!todo.empty()) {
    auto* node = todo.back();
    todo.pop_back();
    if (node == nullptr || !seen.insert(node).second) continue;
    if (node->name().find("CheckpointFunction") != std::string::npos) ++count;
    for (const auto& edge : node->next_edges()) todo.push_back(edge.function.get());
  }
  return count;
}

struct Step {
  std::vector<torch::Tensor> grads;  // in parameter order
  torch::Tensor after;               // a draw of the CPU generator after backward
  int64_t nodes = 0;
};

// One training forward (dropout on) and backward of a fixed weighted sum of
// the output, its dropout drawn after seeding with `seed`; optionally under
// bfloat16 autocast (forward only, as the trainer does).
Step train_step(ScoreNet& net, const Family& f, uint64_t seed, bool bf16) {
  torch::manual_seed(1234);
  const auto x = torch::randn({3, 3, 16, 16});
  const auto weights = torch::randn({3, 3, 16, 16});
  const auto t = f.time_cond();
  net->train();
  net->zero_grad();
  torch::manual_seed(seed);
  torch::Tensor out;
  {
    const auto previous = compat::get_autocast(torch::kCPU);
    if (bf16) compat::set_autocast(torch::kCPU, {true, torch::kBFloat16});
    out = net->forward(x, t);
    compat::set_autocast(torch::kCPU, previous);
  }
  Step s;
  s.nodes = checkpoint_nodes(out);
  (out.to(torch::kFloat) * weights).sum().backward();
  for (const auto& p : net->parameters())
    s.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  s.after = torch::rand({4});
  return s;
}

// ||a - b|| / ||a|| over all gradients together (per tensor it would be
// ill-posed: some gradients are zero in exact arithmetic and hold only
// rounding noise); -1 if a gradient is defined in one and not the other.
double relative_error(const Step& a, const Step& b, bool* bitwise) {
  double diff = 0, norm = 0;
  *bitwise = true;
  for (size_t i = 0; i < a.grads.size(); ++i) {
    if (a.grads[i].defined() != b.grads[i].defined()) return -1;
    if (!a.grads[i].defined()) continue;
    *bitwise &= torch::equal(a.grads[i], b.grads[i]);
    const auto ref = a.grads[i].to(torch::kDouble);
    diff += (ref - b.grads[i].to(torch::kDouble)).pow(2).sum().item<double>();
    norm += ref.pow(2).sum().item<double>();
  }
  return std::sqrt(diff / norm);
}

// DDPM and ADM start residual branches' last layers and attention outputs at
// (near) zero, which would leave most gradients zero; re-draw them.
void wake_up(torch::nn::Module& net) {
  torch::NoGradGuard no_grad;
  for (auto& p : net.parameters())
    if (p.dim() >= 2 && p.abs().max().item<double>() < 1e-6) p.uniform_(-0.1, 0.1);
}

// Summing bf16 gradients in another order changes them by a few bf16 ulps
// (2^-8 relative each); measured 1.3e-3 to 6.5e-3 over the whole gradient.
constexpr double kBf16Tolerance = 2e-2;

class Checkpointed : public ::testing::TestWithParam<Family> {};

TEST_P(Checkpointed, GradientsEqualThePlainStep) {
  const Family& f = GetParam();
  torch::manual_seed(0);
  ScoreNet plain = make_score_net(family_config(f, Checkpointing::kNone));
  wake_up(*plain);
  for (bool bf16 : {false, true}) {
    const Step reference = train_step(plain, f, 7, bf16);
    EXPECT_EQ(reference.nodes, 0) << f.tag;
    for (auto mode : {Checkpointing::kBlocks, Checkpointing::kAttention}) {
      if (mode == Checkpointing::kAttention && f.attention_blocks == 0) continue;
      ScoreNet net = make_score_net(family_config(f, mode));
      {
        torch::NoGradGuard no_grad;
        const auto from = plain->parameters();
        auto to = net->parameters();
        ASSERT_EQ(from.size(), to.size());
        for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
      }
      const Step got = train_step(net, f, 7, bf16);
      const std::string what = std::string(f.tag) + " " + choice_name(mode) +
                               (bf16 ? " bf16" : " fp32");
      EXPECT_EQ(got.nodes, mode == Checkpointing::kBlocks
                               ? f.residual_blocks + f.attention_blocks
                               : f.attention_blocks)
          << what;
      bool bitwise = false;
      const double error = relative_error(reference, got, &bitwise);
      std::printf("[ checkpoint ] %-28s relative error %.2e%s\n", what.c_str(), error,
                  bitwise ? " (bitwise equal)" : "");
      EXPECT_GE(error, 0) << what << ": a gradient is missing";
      if (mode == Checkpointing::kAttention) {
        // An attention block's input feeds only the block, so its two uses
        // are summed alike with and without the checkpoint: bit for bit.
        EXPECT_TRUE(bitwise) << what;
      } else {
        // The recomputed blocks run the same kernels on the same inputs, but
        // an encoder block's input also feeds a skip connection: autograd
        // sums its three gradient contributions as (skip + residual) + norm
        // path without the checkpoint and skip + (residual + norm path) with
        // it. That reordering is the whole difference: float32 rounding, and
        // bfloat16 rounding of the bf16 activations' gradients under
        // autocast (BlockGradientsAreBitwiseThePlainOnes checks each block
        // alone, bit for bit, in both).
        EXPECT_LE(error, bf16 ? kBf16Tolerance : 1e-6) << what;
      }
      // The recompute restored the generator: later draws are the plain step's.
      EXPECT_TRUE(torch::equal(got.after, reference.after)) << what;
    }
  }
  // Dropout is on where the network has it, so equal gradients need the
  // recompute to draw forward's masks: another seed changes them.
  if (f.attention_blocks > 0) {
    bool bitwise = false;
    const double error =
        relative_error(train_step(plain, f, 7, false), train_step(plain, f, 8, false), &bitwise);
    EXPECT_GT(error, 1e-3) << f.tag << ": dropout does not reach the gradients";
  }
}

INSTANTIATE_TEST_SUITE_P(Families, Checkpointed, ::testing::ValuesIn(families()),
                         [](const auto& info) { return std::string(info.param.tag); });

// One block alone, its inputs leaves: every gradient (parameters and
// inputs) and the generator after backward equal the plain block's bit for
// bit, with dropout on, in float32 and under bfloat16 autocast.
struct BlockCase {
  std::string name;
  std::shared_ptr<torch::nn::Module> module;
  BlockFn fn;
  std::vector<torch::Tensor> inputs;  // floating ones get requires_grad
};

std::vector<BlockCase> block_cases() {
  torch::manual_seed(3);
  std::vector<BlockCase> cases;
  auto ddpm = std::make_shared<ResnetBlockDDPMImpl>(
      ResnetBlockDDPMOptions(32, 64).temb_dim(16).dropout(0.5).init_scale(1.0));
  cases.push_back({"ResnetBlockDDPM", ddpm,
                   [ddpm](const std::vector<torch::Tensor>& in) { return ddpm->forward(in[0], in[1]); },
                   {torch::randn({2, 32, 8, 8}), torch::randn({2, 16})}});
  auto biggan = std::make_shared<ResnetBlockBigGANImpl>(ResnetBlockBigGANOptions(32, 32)
                                                            .temb_dim(16)
                                                            .down(true)
                                                            .fir(true)
                                                            .dropout(0.5)
                                                            .init_scale(1.0));
  cases.push_back(
      {"ResnetBlockBigGAN", biggan,
       [biggan](const std::vector<torch::Tensor>& in) { return biggan->forward(in[0], in[1]); },
       {torch::randn({2, 32, 8, 8}), torch::randn({2, 16})}});
  auto attn = AttnBlock(AttnBlockOptions(32).init_scale(1.0)).ptr();
  cases.push_back({"AttnBlock", attn,
                   [attn](const std::vector<torch::Tensor>& in) { return attn->forward(in[0]); },
                   {torch::randn({2, 32, 8, 8})}});
  auto refine = RefineResidualBlock(16, 32, Resample::kDown, 1, Activation::kELU, 10).ptr();
  cases.push_back(
      {"RefineResidualBlock", refine,
       [refine](const std::vector<torch::Tensor>& in) { return refine->forward(in[0], in[1]); },
       {torch::randn({2, 16, 8, 8}), torch::tensor({1, 7}, torch::kLong)}});
  return cases;
}

std::vector<torch::Tensor> block_step(const BlockCase& c, bool checkpointed, bool bf16,
                                      uint64_t seed = 11) {
  c.module->train();
  c.module->zero_grad();
  std::vector<torch::Tensor> leaves;
  for (const auto& t : c.inputs)
    leaves.push_back(t.is_floating_point() ? t.clone().requires_grad_(true) : t);
  torch::manual_seed(seed);
  const auto previous = compat::get_autocast(torch::kCPU);
  if (bf16) compat::set_autocast(torch::kCPU, {true, torch::kBFloat16});
  const auto out = run_block(checkpointed, c.fn, leaves);
  compat::set_autocast(torch::kCPU, previous);
  EXPECT_EQ(checkpoint_nodes(out), checkpointed ? 1 : 0) << c.name;
  (out.to(torch::kFloat) * torch::linspace(-1, 1, out.numel()).view_as(out)).sum().backward();
  std::vector<torch::Tensor> grads;
  for (const auto& p : c.module->parameters()) grads.push_back(p.grad().clone());
  for (const auto& l : leaves)
    if (l.requires_grad()) grads.push_back(l.grad().clone());
  grads.push_back(torch::rand({3}));  // the generator after backward
  return grads;
}

TEST(Checkpointing, BlockGradientsAreBitwiseThePlainOnes) {
  for (const auto& c : block_cases()) {
    for (bool bf16 : {false, true}) {
      const auto plain = block_step(c, false, bf16);
      const auto checkpointed = block_step(c, true, bf16);
      ASSERT_EQ(plain.size(), checkpointed.size());
      for (size_t i = 0; i < plain.size(); ++i)
        EXPECT_TRUE(torch::equal(plain[i], checkpointed[i]))
            << c.name << (bf16 ? " bf16" : " fp32") << " gradient " << i;
    }
  }
  // Dropout reaches the DDPM block's gradients: another seed changes them.
  const auto c = block_cases().front();
  const auto a = block_step(c, false, false, 11), b = block_step(c, false, false, 12);
  EXPECT_FALSE(torch::equal(a[a.size() - 3], b[b.size() - 3]));  // x's gradient
}

TEST(Checkpointing, OnlyTrainingWithGradRecomputes) {
  const Family f = families()[0];
  torch::manual_seed(0);
  ScoreNet net = make_score_net(family_config(f, Checkpointing::kBlocks));
  const auto x = torch::randn({3, 3, 16, 16});
  net->eval();
  EXPECT_EQ(checkpoint_nodes(net->forward(x, f.time_cond())), 0);
  net->train();
  EXPECT_EQ(checkpoint_nodes(net->forward(x, f.time_cond())), 11);
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(net->forward(x, f.time_cond()).requires_grad());
}

TEST(Checkpointing, BlockWithoutGradientInputsRunsPlainly) {
  // The block's parameters still get gradients when no input requires grad.
  auto linear = torch::nn::Linear(4, 3);
  const auto y = run_block(
      true, [linear](const std::vector<torch::Tensor>& in) mutable { return linear(in[0]); },
      {torch::randn({2, 4})});
  y.sum().backward();
  EXPECT_TRUE(linear->weight.grad().defined());
}

TEST(Checkpointing, SecondDerivativesAreRefused) {
  auto linear = torch::nn::Linear(4, 3);
  const auto x = torch::randn({2, 4}, torch::requires_grad());
  const auto y = run_block(
      true, [linear](const std::vector<torch::Tensor>& in) mutable { return linear(in[0]).tanh(); },
      {x});
  EXPECT_THROW(torch::autograd::grad({y.sum()}, {x}, {}, true, /*create_graph=*/true),
               c10::Error);
}

TEST(Checkpointing, NetworksWithoutTheBlocksAreConfigErrorsNamingTheKey) {
  const auto message = [](const std::string& config, std::vector<std::string> overrides) {
    try {
      load_config(config_path(config), overrides);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto m = message("toy/eight_gaussians_vp", {"model.checkpointing=blocks"});
  EXPECT_NE(m.find("model.checkpointing=blocks"), std::string::npos) << m;
  EXPECT_NE(m.find("model.name=mlp"), std::string::npos) << m;
  EXPECT_NE(m.find("model.checkpointing=none"), std::string::npos) << m;
  m = message("ve/ncsnv2/cifar10", {"model.checkpointing=attention"});
  EXPECT_NE(m.find("model.checkpointing=attention"), std::string::npos) << m;
  EXPECT_NE(m.find("model.checkpointing=blocks or none"), std::string::npos) << m;
  m = message("vp/cifar10_ddpmpp_continuous", {"model.checkpointing=blocks", "training.loss=ssm"});
  EXPECT_NE(m.find("training.loss=ssm"), std::string::npos) << m;
  m = message("vp/cifar10_ddpmpp_continuous", {"model.checkpointing=all"});
  EXPECT_NE(m.find("model.checkpointing"), std::string::npos) << m;
  EXPECT_NE(m.find("none, blocks, attention"), std::string::npos) << m;
  // Unset, it is none.
  EXPECT_EQ(load_config(config_path("vp/cifar10_ddpm")).model.checkpointing, Checkpointing::kNone);
}

}  // namespace
}  // namespace scorch
