// The U-Nets of nn/ (DDPM, NCSN++/DDPM++) built from score_sde's CIFAR-10
// configs: exact parameter counts of the reference (score_sde_pytorch at
// cb1f359, instantiated with its own configs), GroupNorm's group rule, the
// frozen Fourier features, shapes, time and class conditioning.
#include <gtest/gtest.h>

#include <string>

#include "core/config.h"
#include "core/error.h"
#include "nn/layers.h"
#include "nn/model_factory.h"
#include "nn/ncsnpp.h"

namespace scorch {
namespace {

std::string config_path(const std::string& name) {
  return std::string(SCORCH_SOURCE_DIR) + "/configs/" + name + ".yaml";
}

struct Expected {
  const char* config;
  int64_t trainable;  // parameters with requires_grad
  int64_t frozen;     // Fourier W
  size_t tensors;     // all parameter tensors (the reference table counts W)
};

// Counts from instantiating score_sde_pytorch's own models with its configs;
// the "parameter tensors" column of the reference table includes the frozen
// Fourier W (570 + 1 and 962 + 1 trainable tensors for NCSN++).
class CifarConfigs : public ::testing::TestWithParam<Expected> {};

TEST_P(CifarConfigs, ParameterCountsMatchTheReference) {
  const auto& e = GetParam();
  const Config config = load_config(config_path(e.config));
  torch::NoGradGuard no_grad;
  ScoreNet net = make_score_net(config);
  EXPECT_EQ(count_trainable_parameters(*net), e.trainable) << e.config;
  EXPECT_EQ(count_parameters(*net) - count_trainable_parameters(*net), e.frozen) << e.config;
  EXPECT_EQ(net->parameters().size(), e.tensors) << e.config;
  size_t trainable_tensors = 0;
  for (const auto& p : net->parameters()) trainable_tensors += p.requires_grad();
  EXPECT_EQ(trainable_tensors, e.tensors - (e.frozen > 0 ? 1 : 0)) << e.config;
  // One buffer, the reference's float64 sigma table.
  ASSERT_EQ(net->named_buffers().size(), 1u);
  EXPECT_EQ(net->named_buffers()["sigmas"].scalar_type(), torch::kFloat64);
}

INSTANTIATE_TEST_SUITE_P(
    ScoreSde, CifarConfigs,
    ::testing::Values(Expected{"ve/cifar10_ncsnpp_continuous", 62758787, 128, 571},
                      Expected{"ve/cifar10_ncsnpp_deep_continuous", 107586947, 128, 963},
                      Expected{"vp/cifar10_ddpmpp_continuous", 61804419, 0, 564},
                      Expected{"subvp/cifar10_ddpmpp_continuous", 61804419, 0, 564},
                      Expected{"vp/cifar10_ddpm", 35218947, 0, 308}));

// configs/edm: EDM's CIFAR-10 networks. Counts from instantiating NVlabs/edm's
// own VPPrecond / VEPrecond / EDMPrecond(SongUNet) with train.py's --arch
// ddpmpp / ncsnpp settings (augment off), label_dim 0 and 10; the three
// preconditionings wrap the same network. NCSN++'s Fourier frequencies are a
// buffer there and a frozen parameter here (128, not counted).
struct EdmExpected {
  const char* config;
  int64_t unconditional;
  int64_t conditional;  // data.num_classes=10 (EDM's --cond=1)
};
class EdmConfigs : public ::testing::TestWithParam<EdmExpected> {};

TEST_P(EdmConfigs, ParameterCountsMatchEdm) {
  const auto& e = GetParam();
  torch::NoGradGuard no_grad;
  const Config uncond = load_config(config_path(e.config));
  EXPECT_NE(uncond.model.precond, Precond::kNone);
  EXPECT_EQ(count_trainable_parameters(*make_score_net(uncond)), e.unconditional) << e.config;
  const Config cond = load_config(config_path(e.config), {"data.num_classes=10"});
  EXPECT_EQ(count_trainable_parameters(*make_score_net(cond)), e.conditional) << e.config;
  // EDM's hyperparameters (train.py for CIFAR-10).
  EXPECT_EQ(uncond.training.batch_size, 512);
  EXPECT_DOUBLE_EQ(uncond.optim.lr, 1e-3);
  EXPECT_EQ(uncond.optim.warmup, 19531);  // 10 Mimg / 512
  EXPECT_DOUBLE_EQ(uncond.model.ema_halflife_kimg, 500);
  EXPECT_DOUBLE_EQ(uncond.model.dropout, 0.13);
  EXPECT_FALSE(uncond.data.random_flip);
}

INSTANTIATE_TEST_SUITE_P(
    Edm, EdmConfigs,
    ::testing::Values(EdmExpected{"edm/cifar10_ddpmpp_vp", 55732739, 55734147},
                      EdmExpected{"edm/cifar10_ddpmpp_ve", 55732739, 55734147},
                      EdmExpected{"edm/cifar10_ddpmpp_edm", 55732739, 55734147},
                      EdmExpected{"edm/cifar10_ncsnpp_vp", 56395523, 56398339},
                      EdmExpected{"edm/cifar10_ncsnpp_ve", 56395523, 56398339},
                      EdmExpected{"edm/cifar10_ncsnpp_edm", 56395523, 56398339}));

TEST(Configs, CarryTheReferenceHyperparameters) {
  const Config ve = load_config(config_path("ve/cifar10_ncsnpp_continuous"));
  EXPECT_EQ(ve.training.sde, SdeKind::kVE);
  EXPECT_FALSE(ve.training.reduce_mean);
  EXPECT_DOUBLE_EQ(ve.model.ema_rate, 0.999);
  EXPECT_EQ(ve.sampling.predictor, Predictor::kReverseDiffusion);
  EXPECT_EQ(ve.sampling.corrector, Corrector::kLangevin);
  EXPECT_DOUBLE_EQ(ve.sampling.snr, 0.16);
  EXPECT_TRUE(ve.model.scale_by_sigma);
  EXPECT_FALSE(ve.data.centered);
  const Config deep = load_config(config_path("ve/cifar10_ncsnpp_deep_continuous"));
  EXPECT_EQ(deep.training.n_iters, 950001);
  EXPECT_EQ(deep.model.num_res_blocks, 8);
  const Config ddpm = load_config(config_path("vp/cifar10_ddpm"));
  EXPECT_FALSE(ddpm.training.continuous);
  EXPECT_EQ(ddpm.sampling.predictor, Predictor::kAncestral);
  EXPECT_DOUBLE_EQ(ddpm.model.ema_rate, 0.9999);
  const Config subvp = load_config(config_path("subvp/cifar10_ddpmpp_continuous"));
  EXPECT_EQ(subvp.training.sde, SdeKind::kSubVP);
  EXPECT_TRUE(subvp.training.reduce_mean);
  EXPECT_EQ(subvp.sampling.predictor, Predictor::kEulerMaruyama);
  EXPECT_EQ(subvp.training.n_iters, 1300001);
  EXPECT_EQ(subvp.optim.warmup, 5000);
}

TEST(GroupNormRule, QuarterUpTo32OrFixed32) {
  EXPECT_EQ(group_count(256, GroupRule::kQuarterUpTo32), 32);
  EXPECT_EQ(group_count(128, GroupRule::kQuarterUpTo32), 32);
  EXPECT_EQ(group_count(64, GroupRule::kQuarterUpTo32), 16);
  EXPECT_EQ(group_count(16, GroupRule::kQuarterUpTo32), 4);
  EXPECT_EQ(group_count(4, GroupRule::kQuarterUpTo32), 1);
  EXPECT_THROW(group_count(2, GroupRule::kQuarterUpTo32), Error);
  EXPECT_EQ(group_count(64, GroupRule::kFixed32), 32);
  EXPECT_THROW(group_count(48, GroupRule::kFixed32), Error);
  auto norm = make_group_norm(64, GroupRule::kQuarterUpTo32);
  EXPECT_EQ(norm->options.num_groups(), 16);
  EXPECT_DOUBLE_EQ(norm->options.eps(), 1e-6);
}

TEST(DefaultInit, IsUniformWithFanAverageVariance) {
  torch::manual_seed(0);
  auto w = torch::empty({64, 32, 3, 3});
  default_init_(w);
  const double bound = std::sqrt(3.0 / ((32 * 9 + 64 * 9) / 2.0));
  EXPECT_LE(w.abs().max().item<double>(), bound);
  EXPECT_GT(w.abs().max().item<double>(), 0.98 * bound);
  EXPECT_NEAR(w.var().item<double>(), bound * bound / 3.0, 0.05 * bound * bound / 3.0);
  default_init_(w, 0.0);  // "zero" init is 1e-10
  EXPECT_LE(w.abs().max().item<double>(), std::sqrt(3e-10 / 432.0) * 1.0001);
}

// A small NCSN++ on 16x16 images from the VE config.
Config small_config(const std::string& name, std::vector<std::string> extra = {}) {
  std::vector<std::string> overrides = {"data.image_size=16",
                                        "model.nf=32",
                                        "model.ch_mult=[1,2]",
                                        "model.num_res_blocks=1",
                                        "model.attn_resolutions=[8]",
                                        "model.init_scale=1.0",
                                        "model.dropout=0"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_config(config_path(name), overrides);
}

// score_sde starts every residual branch's last conv at scale 1e-10, so at
// initialisation the conditioning barely reaches the output; re-draw those
// weights at scale 1 to test the wiring.
void wake_up(torch::nn::Module& net) {
  torch::NoGradGuard no_grad;
  for (auto& p : net.parameters()) {
    if (p.dim() >= 2 && p.abs().max().item<double>() < 1e-6) default_init_(p);
  }
}

TEST(NCSNpp, FourierFeaturesAreFrozen) {
  torch::manual_seed(0);
  ScoreNet net = make_score_net(small_config("ve/cifar10_ncsnpp_continuous", {"model.nf=64"}));
  auto params = net->named_parameters();
  ASSERT_TRUE(params.contains("all_modules.0.W"));
  const auto w = params["all_modules.0.W"];
  EXPECT_FALSE(w.requires_grad());
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{64}));  // embedding size nf
  EXPECT_NEAR(w.std().item<double>(), 16.0, 5.0);    // fourier_scale
  // It gets no gradient while the rest trains.
  auto x = torch::rand({2, 3, 16, 16});
  net->forward(x, torch::tensor({0.5f, 3.0f})).square().sum().backward();
  EXPECT_FALSE(w.grad().defined());
  EXPECT_TRUE(params["all_modules.1.weight"].grad().defined());
}

TEST(Networks, OutputShapeAndTimeDependence) {
  torch::manual_seed(0);
  for (const char* name :
       {"ve/cifar10_ncsnpp_continuous", "vp/cifar10_ddpmpp_continuous", "vp/cifar10_ddpm"}) {
    ScoreNet net = make_score_net(small_config(name));
    wake_up(*net);
    net->eval();
    torch::NoGradGuard no_grad;
    auto x = torch::rand({3, 3, 16, 16});
    auto t1 = torch::tensor({0.1f, 1.0f, 10.0f});
    auto t2 = torch::tensor({20.0f, 5.0f, 0.5f});
    auto y1 = net->forward(x, t1);
    EXPECT_EQ(y1.sizes(), x.sizes()) << name;
    EXPECT_TRUE(torch::isfinite(y1).all().item<bool>()) << name;
    EXPECT_TRUE(torch::equal(y1, net->forward(x, t1))) << name;  // eval: deterministic
    const double scale = y1.abs().max().item<double>();
    EXPECT_GT((y1 - net->forward(x, t2)).abs().max().item<double>(), 1e-3 * scale) << name;
  }
}

// model.channels_last: every 4-D weight in NHWC order, the same function.
TEST(Networks, ChannelsLastKeepsTheFunction) {
  for (const char* name : {"ve/cifar10_ncsnpp_continuous", "vp/cifar10_ddpm"}) {
    torch::manual_seed(0);
    ScoreNet plain = make_score_net(small_config(name));
    torch::manual_seed(0);
    ScoreNet nhwc = make_score_net(small_config(name, {"model.channels_last=true"}));
    wake_up(*plain);
    {  // the same weights, each in its own layout
      torch::NoGradGuard no_grad;
      auto from = plain->parameters(), to = nhwc->parameters();
      for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
    }
    int64_t four_d = 0;
    for (const auto& p : nhwc->parameters()) {
      if (p.dim() != 4) continue;
      ++four_d;
      EXPECT_TRUE(p.is_contiguous(torch::MemoryFormat::ChannelsLast)) << name;
    }
    EXPECT_GT(four_d, 5) << name;
    plain->eval();
    nhwc->eval();
    torch::NoGradGuard no_grad;
    const auto x = torch::rand({2, 3, 16, 16});
    const auto t = torch::tensor({0.5f, 7.0f});
    const auto a = plain->forward(x, t);
    const auto b = nhwc->forward(x.contiguous(torch::MemoryFormat::ChannelsLast), t);
    EXPECT_LE((a - b).abs().max().item<double>(), 1e-5 * a.abs().max().item<double>()) << name;
  }
}

TEST(Networks, ScaleBySigmaDividesTheOutput) {
  // VE NCSN++ returns net(x, sigma) / sigma: with the same weights, the
  // network without scale_by_sigma outputs sigma times as much.
  torch::manual_seed(0);
  auto cfg = small_config("ve/cifar10_ncsnpp_continuous");
  ScoreNet scaled = make_score_net(cfg);
  cfg.model.scale_by_sigma = false;
  ScoreNet plain = make_score_net(cfg);
  torch::NoGradGuard no_grad;
  auto source = scaled->named_parameters();
  for (auto& item : plain->named_parameters()) item.value().copy_(source[item.key()]);
  scaled->eval();
  plain->eval();
  auto x = torch::rand({2, 3, 16, 16});
  auto sigma = torch::tensor({0.5f, 4.0f});
  auto ratio = plain->forward(x, sigma) / scaled->forward(x, sigma);
  EXPECT_NEAR(ratio[0].mean().item<double>(), 0.5, 1e-4);
  EXPECT_NEAR(ratio[1].mean().item<double>(), 4.0, 1e-3);
}

TEST(Networks, ClassConditioningAddsAnEmbeddingWithANullClass) {
  for (const char* name : {"vp/cifar10_ddpmpp_continuous", "vp/cifar10_ddpm"}) {
    torch::manual_seed(0);
    const auto base = small_config(name);
    const auto cond = small_config(name, {"data.num_classes=10"});
    const int64_t nf = base.model.nf;
    ScoreNet uncond_net = make_score_net(base);
    ScoreNet net = make_score_net(cond);
    wake_up(*net);
    // Exactly one (num_classes + 1) x 4nf embedding more.
    EXPECT_EQ(count_trainable_parameters(*net) - count_trainable_parameters(*uncond_net),
              11 * 4 * nf)
        << name;
    ASSERT_TRUE(net->named_parameters().contains("class_embedding.weight")) << name;
    net->eval();
    torch::NoGradGuard no_grad;
    auto x = torch::rand({2, 3, 16, 16});
    auto t = torch::tensor({100.0f, 100.0f});
    auto a = net->forward(x, t, torch::tensor({3, 3}));
    auto b = net->forward(x, t, torch::tensor({5, 5}));
    EXPECT_GT((a - b).abs().max().item<double>(), 1e-3 * a.abs().max().item<double>()) << name;
    // Undefined labels are the null class (index num_classes).
    EXPECT_TRUE(torch::allclose(net->forward(x, t), net->forward(x, t, torch::tensor({10, 10}))))
        << name;
  }
}

// EDM's SongUNet conditioning (model.precond sets it): Fourier features of the
// noise label itself, not of its log, and labels as sqrt(K) one-hot vectors
// through a Linear map added to the noise embedding; the null class is zero.
TEST(NCSNpp, EdmConditioningEmbedsCNoiseAndOneHotLabels) {
  torch::manual_seed(0);
  auto options = NCSNppOptions()
                     .image_size(16)
                     .nf(16)
                     .ch_mult({1, 2})
                     .num_res_blocks(1)
                     .attn_resolutions({8})
                     .dropout(0)
                     .init_scale(1.0);
  NCSNpp edm(NCSNppOptions(options).num_classes(3).edm_conditioning(true));
  NCSNpp plain(options);
  auto mine = edm->named_parameters();
  ASSERT_TRUE(mine.contains("label_map.weight"));
  EXPECT_EQ(mine["label_map.weight"].sizes(), (std::vector<int64_t>{32, 3}));  // 2 nf Fourier
  EXPECT_FALSE(mine.contains("class_embedding.weight"));
  EXPECT_EQ(count_trainable_parameters(*edm) - count_trainable_parameters(*plain), 3 * 32 + 32);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : plain->named_parameters()) p.value().copy_(mine[p.key()]);
    mine["label_map.bias"].normal_();
  }
  edm->eval();
  plain->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::rand({3, 3, 16, 16});
  const auto c_noise = torch::tensor({-1.5f, 0.1f, 2.0f});  // EDM's ln(sigma)/4 may be negative
  const auto null = torch::tensor({3, 3, 3});
  // Null labels add only the map's bias: zero it and the function is the
  // plain network's at exp(c_noise) (whose Fourier features take the log).
  const auto with_bias = edm->forward(x, c_noise, null);
  mine["label_map.bias"].zero_();
  const auto a = edm->forward(x, c_noise, null);
  const auto b = plain->forward(x, torch::exp(c_noise));
  EXPECT_LE((a - b).abs().max().item<double>(), 1e-4 * b.abs().max().item<double>());
  EXPECT_GT((with_bias - a).abs().max().item<double>(), 1e-3 * a.abs().max().item<double>());
  EXPECT_TRUE(torch::equal(edm->forward(x, c_noise), a));  // undefined labels: the null class
  // Label j adds sqrt(3) times column j of the map: zero that column and it is the null class.
  const auto labelled = edm->forward(x, c_noise, torch::tensor({1, 1, 1}));
  EXPECT_GT((labelled - a).abs().max().item<double>(), 1e-3 * a.abs().max().item<double>());
  mine["label_map.weight"].select(1, 1).zero_();
  EXPECT_TRUE(torch::allclose(edm->forward(x, c_noise, torch::tensor({1, 1, 1})), a));
}

TEST(Factory, RejectsWhatTheNetworksCannotHonour) {
  // Fourier features embed sigma, so discrete training is refused with the config.
  EXPECT_THROW(
      load_config(config_path("ve/cifar10_ncsnpp_continuous"), {"training.continuous=false"}),
      Error);
  EXPECT_THROW(make_score_net(small_config("vp/cifar10_ddpm", {"model.nf=16"})), Error);
  EXPECT_THROW(make_score_net(small_config("vp/cifar10_ddpmpp_continuous", {"model.conv_size=5"})),
               Error);
  EXPECT_THROW(parse_choice<ProgressiveOutput>("outputskip", "model.progressive"), Error);
}

}  // namespace
}  // namespace scorch
