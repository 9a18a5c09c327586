// EDM2's magnitude-preserving U-Net and Precond (nn/edm2.h): the trainable
// parameter counts of EDM2's presets, outputs, stored weights and gradients
// of NVlabs/edm2's own code given its weights, its state_dict names, the
// magnitude-preserving operations' closed forms, and the wiring into
// make_score_net, EDM's loss and the sigma-space samplers.
//
// tests/nn/data/edm2/edm2_tiny_state.pt and edm2_tiny_io.pt were produced
// once, outside this repository, by NVlabs/edm2 @4bf8162
// training/networks_edm2.py under Debian's python3-torch 1.13 on the CPU
// (its persistence decorator and misc.const_like stubbed):
// torch.manual_seed(0); Precond(16, 3, label_dim=3, model_channels=8,
// channel_mult=[1, 2], channel_mult_noise=2, num_blocks=1,
// attn_resolutions=[8], channels_per_head=8, dropout=0); every 0-dim gain
// set to 0.5 + 0.5 N(0, 1) and every weight row scaled by U(0.5, 1.5), so
// that no branch is zero and no weight is normalised yet; torch.save of its
// state_dict() (the state file). Then x = randn(4, 3, 16, 16) * [0.3, 1, 5,
// 20], sigma = [0.02, 0.7, 5, 40], labels [0, 2, 1, null] (one-hot, the null
// class a zero row); in eval mode net(x, sigma, onehot, return_logvar=True)
// -> eval_denoised, eval_logvar; then in training mode the same -> train_*,
// the backward of mean(D^2) + sum(u) in float64 (train_grads: the gains and
// five weights), and the stored weights after that forward (train_weights,
// every *.weight). The io file holds these and x, sigma, labels (int64, 3 =
// null). No reference code or generator script is kept here.
#include "nn/edm2.h"
#include "testing/edm2_tiny.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/compat.h"
#include "core/config.h"
#include "core/error.h"
#include "losses/loss.h"
#include "nn/model_factory.h"
#include "nn/torch_load.h"
#include "sampling/conditional.h"
#include "sde/sde.h"

namespace scorch {
namespace {

std::string data_path(const std::string& file) {
  return std::string(SCORCH_SOURCE_DIR) + "/tests/nn/data/edm2/" + file;
}

std::string config_path(const std::string& name) {
  return std::string(SCORCH_SOURCE_DIR) + "/configs/" + name + ".yaml";
}

std::shared_ptr<Sde> ve_sde() {
  return make_sde(load_config(config_path("edm2/img64-xs")));  // VE, sigma 0.002..80
}

// max |a - b| / max |b|, the error relative to the reference's largest magnitude.
double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ref = b.to(torch::kDouble);
  return (a.to(torch::kDouble).reshape(ref.sizes()) - ref).abs().max().item<double>() /
         ref.abs().max().item<double>();
}

// Copies EDM2's state dict into `net` by name, requiring the same names, in
// the same order, with the same shapes as its parameters and buffers.
void load_edm2_state(EDM2PrecondImpl& net, const c10::Dict<c10::IValue, c10::IValue>& state) {
  torch::NoGradGuard no_grad;
  auto params = net.named_parameters();
  auto buffers = net.named_buffers();
  ASSERT_EQ(state.size(), params.size() + buffers.size());
  for (const auto& item : state) {
    const auto& key = item.key().toStringRef();
    const auto value = item.value().toTensor();
    torch::Tensor* target = params.find(key);
    if (target == nullptr) target = buffers.find(key);
    ASSERT_NE(target, nullptr) << "EDM2's " << key << " has no counterpart";
    ASSERT_EQ(target->sizes(), value.sizes()) << key;
    target->copy_(value);
  }
}

c10::Dict<c10::IValue, c10::IValue> load_dict(const std::string& file) {
  return load_torch_file(data_path(file)).toGenericDict();
}

// EDM2's state_dict, in its order: parameters and buffers of each module
// before its children's (out_gain, emb_fourier.*, ..., logvar_linear.weight).
TEST(Edm2StateDict, KeyNamesAndShapesAreEdm2Precond) {
  EDM2Precond net(testing::tiny_edm2_options(), ve_sde());
  const auto state = load_dict("edm2_tiny_state.pt");
  std::vector<std::string> ours;
  for (const auto& item : net->named_parameters()) ours.push_back(item.key());
  size_t i = 0, matched = 0;
  for (const auto& item : state) {
    const auto& key = item.key().toStringRef();
    const bool buffer = key.find("_fourier.") != std::string::npos;
    if (buffer) {
      ASSERT_NE(net->named_buffers().find(key), nullptr) << key;
    } else {
      ASSERT_LT(i, ours.size());
      EXPECT_EQ(ours[i++], key);  // the same order as EDM2's parameters
    }
    ++matched;
  }
  EXPECT_EQ(i, ours.size());
  EXPECT_EQ(matched, ours.size() + net->named_buffers().size());
  load_edm2_state(*net, state);  // shapes
}

// The reference's outputs (denoiser and logvar) in eval and training mode,
// the weights that forced normalization stores, and the gradients.
TEST(Edm2Reference, ReproducesEdm2InEvalAndTrainingMode) {
  EDM2Precond net(testing::tiny_edm2_options(), ve_sde());
  load_edm2_state(*net, load_dict("edm2_tiny_state.pt"));
  const auto io = load_dict("edm2_tiny_io.pt");
  const auto x = io.at("x").toTensor(), sigma = io.at("sigma").toTensor();
  const auto labels = io.at("labels").toTensor();
  std::vector<torch::Tensor> before;
  for (const auto& p : net->parameters()) before.push_back(p.detach().clone());

  net->eval();
  {
    torch::NoGradGuard no_grad;
    const auto out = net->denoise_with_logvar(x, sigma, labels);
    const double d = relative_error(out.denoised, io.at("eval_denoised").toTensor());
    const double u = relative_error(out.logvar, io.at("eval_logvar").toTensor());
    EXPECT_LE(d, 1e-5);
    EXPECT_LE(u, 1e-5);
    std::printf("[ edm2  ] eval:  denoised rel err %.3g, logvar %.3g\n", d, u);
  }
  const auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i)  // eval mode writes nothing
    EXPECT_TRUE(torch::equal(params[i], before[i])) << i;

  net->train();
  const auto out = net->denoise_with_logvar(x, sigma, labels);
  const double d = relative_error(out.denoised, io.at("train_denoised").toTensor());
  const double u = relative_error(out.logvar, io.at("train_logvar").toTensor());
  EXPECT_LE(d, 1e-5);
  EXPECT_LE(u, 1e-5);
  const auto loss =
      out.denoised.to(torch::kDouble).pow(2).mean() + out.logvar.to(torch::kDouble).sum();
  loss.backward();

  auto named = net->named_parameters();
  double worst_weight = 0, worst_grad = 0;
  const auto weights = io.at("train_weights").toGenericDict();
  for (const auto& item : weights) {
    const auto& key = item.key().toStringRef();
    ASSERT_NE(named.find(key), nullptr) << key;
    const double e = relative_error(named[key].detach(), item.value().toTensor());
    EXPECT_LE(e, 1e-5) << key;
    worst_weight = std::max(worst_weight, e);
  }
  EXPECT_EQ(weights.size(), 48u);  // every MPConv
  const auto grads = io.at("train_grads").toGenericDict();
  for (const auto& item : grads) {
    const auto& key = item.key().toStringRef();
    ASSERT_TRUE(named[key].grad().defined()) << key;
    // A gradient sums over every pixel in float32, with cancellation: 1e-4.
    const double e = relative_error(named[key].grad(), item.value().toTensor());
    EXPECT_LE(e, 1e-4) << key;
    worst_grad = std::max(worst_grad, e);
  }
  EXPECT_EQ(grads.size(), 16u);
  std::printf(
      "[ edm2  ] train: denoised rel err %.3g, logvar %.3g, stored weights %.3g, grads %.3g\n", d,
      u, worst_weight, worst_grad);
}

// Trainable parameters of EDM2's Precond (unet + logvar head; the MPFourier
// buffers are not parameters) with label_dim 1000, counted by
// networks_edm2.py under python3-torch 1.13, built from each config on the
// meta device (no memory). make_score_net builds the same class.
TEST(Edm2, ConfigsHaveEdm2sParameterCounts) {
  const std::vector<std::pair<std::string, int64_t>> presets = {
      {"img64-xs", 124710949},  {"img64-s", 280209381},  {"img64-m", 497803173},
      {"img512-xs", 124713253}, {"img512-s", 280212837}, {"img512-m", 497807781}};
  for (const auto& [name, expected] : presets) {
    const Config c = load_config(config_path("edm2/" + name));
    EDM2Precond net(edm2_options(c).device(torch::kMeta), make_sde(c));
    EXPECT_EQ(count_trainable_parameters(*net), expected) << name;
    EXPECT_EQ(net->parameters().size(), 199u) << name;  // EDM2's, every preset
  }
  // make_score_net: the EDM2 Precond itself, not wrapped again (a small width
  // keeps it cheap on the CPU).
  ScoreNet net = make_score_net(load_config(config_path("edm2/img64-xs"), {"model.nf=8"}));
  ASSERT_NE(std::dynamic_pointer_cast<EDM2PrecondImpl>(net), nullptr);
  EXPECT_NE(net->named_parameters().find("unet.enc.64x64_conv.weight"), nullptr);
}

// normalize, mp_silu, mp_sum and mp_cat against their formulas, and the
// magnitudes they preserve for unit-variance inputs.
TEST(Edm2, MagnitudePreservingOperationsKeepUnitVariance) {
  torch::manual_seed(3);
  const auto w = torch::randn({5, 7, 3, 3}, torch::kDouble) * 3;
  const auto norm = w.flatten(1).norm(2, 1).view({5, 1, 1, 1});
  EXPECT_TRUE(torch::allclose(mp_normalize(w), w / (1e-4 + norm / std::sqrt(63.0)), 1e-6, 0));
  const auto a = torch::randn({400000}, torch::kDouble), b = torch::randn({400000}, torch::kDouble);
  EXPECT_NEAR(mp_sum(a, b, 0.3).std().item<double>(), 1.0, 0.01);
  EXPECT_TRUE(torch::allclose(mp_sum(a, b, 0.3), (0.7 * a + 0.3 * b) / std::sqrt(0.58)));
  EXPECT_NEAR(mp_silu(a).pow(2).mean().sqrt().item<double>(), 1.0, 0.01);  // Eq. 81's 0.596
  const auto x = torch::randn({2000, 3, 4, 4}), y = torch::randn({2000, 5, 4, 4});
  const auto c = mp_cat(x, y, 0.5);
  ASSERT_EQ(c.size(1), 8);
  EXPECT_NEAR(c.pow(2).mean().item<double>(), 1.0, 0.01);
  EXPECT_TRUE(torch::allclose(c.narrow(1, 0, 3), x * std::sqrt(8.0 / 6.0)));
  // Box-filter resampling: the 2x2 mean down, each pixel repeated 2x2 up.
  const auto img = torch::arange(16.0).view({1, 1, 4, 4});
  EXPECT_TRUE(torch::equal(mp_resample(img, EDM2Resample::kDown),
                           torch::tensor({2.5, 4.5, 10.5, 12.5}).view({1, 1, 2, 2})));
  EXPECT_TRUE(
      torch::equal(mp_resample(mp_resample(img, EDM2Resample::kUp), EDM2Resample::kDown), img));
}

// Forced weight normalization: a training forward stores each weight row
// divided by eps + its RMS, so a row of RMS r keeps RMS r / (1e-4 + r).
TEST(Edm2, TrainingForwardStoresNormalisedWeights) {
  torch::manual_seed(4);
  EDM2Precond net(testing::tiny_edm2_options(), ve_sde());
  const auto rms = [](const torch::Tensor& p) {
    return p.detach().to(torch::kDouble).flatten(1).pow(2).mean(1).sqrt();
  };
  std::vector<torch::Tensor> before;
  for (const auto& p : net->parameters()) before.push_back(p.dim() < 2 ? p : rms(p));
  net->train();
  net->denoise_with_logvar(torch::randn({2, 3, 16, 16}), torch::tensor({0.5, 3.0}));
  const auto named = net->named_parameters();
  for (size_t i = 0; i < named.size(); ++i) {
    const auto& p = named[i].value();
    if (p.dim() < 2) continue;
    const auto expected = before[i] / (1e-4 + before[i]);
    EXPECT_LT((rms(p) - expected).abs().max().item<double>(), 1e-6) << named[i].key();
  }
}

// Undefined labels are the null class, a zero one-hot row (the reference's
// class_labels=None); block outputs are clipped to +-256.
TEST(Edm2, NullLabelsAndActivationClip) {
  torch::manual_seed(5);
  EDM2Precond net(testing::tiny_edm2_options(), ve_sde());
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters())
      if (p.dim() == 0) p.fill_(0.7);  // a non-zero out_gain and emb_gains
  }
  net->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 3, 16, 16});
  const auto sigma = torch::tensor({0.5, 3.0});
  const auto null = net->denoise(x, sigma, torch::tensor({3, 3}));
  EXPECT_TRUE(torch::equal(net->denoise(x, sigma), null));
  EXPECT_GT((net->denoise(x, sigma, torch::tensor({0, 1})) - null).abs().max().item<double>(),
            1e-4);

  EDM2Block block(16, 16, 8, /*decoder=*/true, EDM2Resample::kKeep, false, testing::tiny_edm2_options());
  block->eval();
  const auto big = block->forward(torch::full({1, 16, 4, 4}, 1e4), torch::zeros({1, 8}));
  EXPECT_EQ(big.abs().max().item<double>(), 256.0);
}

// model.name=edm2 through make_score_net trains with training.loss=edm (one
// backward reaches every parameter, the logvar head excepted), and the
// sigma-space samplers' denoiser is its own.
TEST(Edm2, TrainsWithEdmLossAndSamplesThroughItsDenoiser) {
  torch::manual_seed(6);
  const Config c = load_config(
      config_path("edm2/img64-xs"),
      {"data.image_size=16", "data.num_classes=3", "model.nf=8", "model.edm2_channel_mult=[1,2]",
       "model.edm2_num_blocks=1", "model.edm2_attn_resolutions=[8]",
       "model.edm2_channels_per_head=8", "model.dropout=0.1"});
  ScoreNet net = make_score_net(c);
  auto* edm2 = dynamic_cast<EDM2PrecondImpl*>(net.get());
  ASSERT_NE(edm2, nullptr);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters())
      if (p.dim() == 0) p.fill_(0.5);
  }
  net->train();
  const auto loss_fn = make_loss(c, make_sde(c));
  const auto x = torch::rand({4, 3, 16, 16}) * 2 - 1;
  const auto out = (*loss_fn)(*net, x, torch::tensor({0, 1, 2, 3}));
  ASSERT_TRUE(std::isfinite(out.loss.item<double>()));
  out.loss.backward();
  for (const auto& item : net->named_parameters()) {
    if (item.key().rfind("logvar_", 0) == 0) continue;  // trained by the edm2 loss only
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
  }
  net->eval();
  torch::NoGradGuard no_grad;
  const auto denoiser = make_precond_denoiser(net);
  ASSERT_TRUE(static_cast<bool>(denoiser));
  const auto xs = torch::randn({2, 3, 16, 16}, torch::kDouble);
  const auto d = denoiser(xs, 2.0);
  const auto expected = edm2->denoise(xs.to(torch::kFloat), torch::full({2}, 2.0));
  EXPECT_TRUE(torch::equal(d, expected.to(torch::kDouble)));
}

// Under bfloat16 autocast (the CPU's; CUDA runs float16 the same way) the
// network runs, backward included, and stays near its float32 output.
TEST(Edm2, RunsUnderAutocast) {
  torch::manual_seed(7);
  EDM2Precond net(testing::tiny_edm2_options(), ve_sde());
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters())
      if (p.dim() == 0) p.fill_(0.7);
  }
  net->eval();
  const auto x = torch::randn({2, 3, 16, 16});
  const auto sigma = torch::tensor({0.5, 3.0});
  const auto labels = torch::tensor({0, 2});
  torch::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    reference = net->denoise(x, sigma, labels);
  }
  const auto previous = compat::get_autocast(torch::kCPU);
  compat::set_autocast(torch::kCPU, {true, torch::kBFloat16});
  net->train();
  const auto out = net->denoise_with_logvar(x, sigma, labels);
  (out.denoised.to(torch::kFloat).pow(2).mean() + out.logvar.sum()).backward();
  compat::set_autocast(torch::kCPU, previous);
  EXPECT_LT(relative_error(out.denoised, reference), 0.05);
  for (const auto& p : net->parameters())
    ASSERT_TRUE(p.grad().defined() && torch::isfinite(p.grad()).all().item<bool>());
}

TEST(Edm2, ConfigErrorsNameTheKey) {
  auto error_of = [](const std::vector<std::string>& overrides) {
    try {
      make_score_net(load_config(config_path("edm2/img64-xs"), overrides));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of({"model.precond=none"}).find("model.precond=edm"), std::string::npos);
  EXPECT_NE(error_of({"model.ch_mult=[1,2]"}).find("model.edm2_channel_mult"), std::string::npos);
  EXPECT_NE(error_of({"model.num_res_blocks=2"}).find("model.edm2_num_blocks"), std::string::npos);
  EXPECT_NE(error_of({"model.attn_resolutions=[8]"}).find("model.edm2_attn_resolutions"),
            std::string::npos);
  EXPECT_NE(error_of({"model.checkpointing=blocks"}).find("model.checkpointing"),
            std::string::npos);
  EXPECT_NE(error_of({"model.edm2_attn_resolutions=[12]"}).find("model.edm2_attn_resolutions"),
            std::string::npos);
  EXPECT_NE(error_of({"data.image_size=60"}).find("model.edm2_channel_mult"), std::string::npos);
}

}  // namespace
}  // namespace scorch
