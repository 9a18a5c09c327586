// The ADM U-Net (nn/adm.h): outputs of guided-diffusion's UNetModel given its
// weights for 1-D, 2-D (with and without classes) and 3-D signals, parameter
// counts of the reference's published configs, the time embedding's closed
// form, and config errors that name the key.
//
// tests/nn/data/adm/<name>_io.pth were produced once, outside this
// repository, by openai/guided-diffusion @22e0df8 guided_diffusion/unet.py
// UNetModel under Debian's python3-torch 1.13: torch.manual_seed(0), every
// parameter moved by 0.1 N(0, 1) and rounded to float16 (stored as float16,
// so the file is small and the float32 model is exact), eval mode, x =
// randn, timesteps [3, 517.25, 999][:B], labels [0, num_classes - 1, 2][:B];
// torch.save of {state, x, t, out (float64), y}. The options of each are in
// kFixtures below. No reference code or generator script is kept here.
#include "nn/adm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/config.h"
#include "core/error.h"
#include "nn/model_factory.h"
#include "nn/torch_load.h"

namespace scorch {
namespace {

struct Fixture {
  const char* name;
  ADMOptions options;
};

ADMOptions small() { return ADMOptions().model_channels(32).num_res_blocks(1).dropout(0.1); }

const Fixture kFixtures[] = {
    {"adm2d_cond", small()
                       .image_size(16)
                       .attention_ds({2})
                       .channel_mult({1, 1})
                       .num_classes(5)
                       .num_heads(2)
                       .use_scale_shift_norm(true)
                       .resblock_updown(true)},
    {"adm2d", small()
                  .image_size(8)
                  .in_channels(4)
                  .out_channels(2)
                  .attention_ds({1, 2})
                  .channel_mult({1, 1})
                  .conv_resample(false)
                  .num_head_channels(16)
                  .use_new_attention_order(true)},
    {"adm1d", small()
                  .dims(1)
                  .image_size(16)
                  .in_channels(2)
                  .out_channels(2)
                  .attention_ds({2})
                  .channel_mult({1, 1})
                  .num_heads(4)
                  .use_scale_shift_norm(true)
                  .resblock_updown(true)},
    {"adm3d", small()
                  .dims(3)
                  .image_size(8)
                  .in_channels(1)
                  .out_channels(1)
                  .attention_ds({2})
                  .channel_mult({1, 1})
                  .num_res_blocks(0)
                  .dropout(0.0)},
};

class AdmReference : public ::testing::TestWithParam<Fixture> {};

TEST_P(AdmReference, ReproducesGuidedDiffusionGivenItsWeights) {
  const auto& f = GetParam();
  ADM net(f.options);
  net->eval();
  const auto io = load_torch_file(std::string(SCORCH_SOURCE_DIR) + "/tests/nn/data/adm/" +
                                  f.name + "_io.pth")
                      .toGenericDict();
  const auto state = io.at("state").toGenericDict();
  torch::NoGradGuard no_grad;
  auto params = net->named_parameters();
  EXPECT_EQ(state.size(), params.size()) << f.name;
  int64_t reference_count = 0;
  for (const auto& item : state) {
    const auto key = item.key().toStringRef();
    const auto value = item.value().toTensor().to(torch::kFloat);
    reference_count += value.numel();
    torch::Tensor* target = params.find(key);
    ASSERT_NE(target, nullptr) << "reference tensor " << key << " has no counterpart";
    if (key == "label_emb.weight") {
      // Scorch's extra last row is the null class (classifier-free guidance).
      ASSERT_EQ(target->size(0), value.size(0) + 1) << key;
      target->narrow(0, 0, value.size(0)).copy_(value);
    } else {
      ASSERT_EQ(target->sizes(), value.sizes()) << key;
      target->copy_(value);
    }
  }
  const int64_t extra = f.options.num_classes() > 0 ? 4 * f.options.model_channels() : 0;
  EXPECT_EQ(count_parameters(*net), reference_count + extra) << f.name;

  const auto x = io.at("x").toTensor(), t = io.at("t").toTensor();
  const auto y = io.contains("y") ? io.at("y").toTensor() : torch::Tensor();
  const auto expected = io.at("out").toTensor();
  const auto out = net->forward(x, t, y);
  ASSERT_EQ(out.sizes(), expected.sizes());
  const double scale = expected.abs().max().item<double>();
  const double diff = (out.to(torch::kDouble) - expected).abs().max().item<double>();
  EXPECT_LE(diff, 2e-5 * std::max(1.0, scale)) << f.name;
  std::printf("[ adm   ] %-10s max|diff| %.3g (|ref| %.3g)\n", f.name, diff, scale);
}

INSTANTIATE_TEST_SUITE_P(GuidedDiffusion, AdmReference, ::testing::ValuesIn(kFixtures),
                         [](const auto& info) { return std::string(info.param.name); });

// Parameter counts of guided-diffusion's README models, built by its
// script_util.create_model with learn_sigma=False (3 output channels: a
// score model has no variance head) and summed over model.parameters() by
// /usr/bin/python3 (torch 1.13). Class-conditional models add the null
// class's row (4 model_channels) here.
TEST(Adm, ParameterCountsMatchGuidedDiffusionConfigs) {
  torch::NoGradGuard no_grad;
  // --image_size 64 --num_channels 192 --num_res_blocks 3 --attention_resolutions 32,16,8
  // --num_head_channels 64 --use_scale_shift_norm --resblock_updown
  // --use_new_attention_order --class_cond --dropout 0.1: 295,899,267.
  ADM imagenet64(ADMOptions()
                     .image_size(64)
                     .model_channels(192)
                     .num_res_blocks(3)
                     .attention_ds({2, 4, 8})
                     .channel_mult({1, 2, 3, 4})
                     .num_head_channels(64)
                     .use_scale_shift_norm(true)
                     .resblock_updown(true)
                     .use_new_attention_order(true)
                     .num_classes(1000)
                     .dropout(0.1));
  EXPECT_EQ(count_parameters(*imagenet64), 295899267 + 4 * 192);
  EXPECT_EQ(imagenet64->parameters().size(), 541u);
}

std::string config_path(const std::string& name) {
  return std::string(SCORCH_SOURCE_DIR) + "/configs/" + name + ".yaml";
}

// The same counts through the configs: improved-diffusion's CIFAR-10 U-Net
// (--num_channels 128 --num_res_blocks 3 --channel_mult 1,2,2,2
// --attention_resolutions 16,8 --num_heads 4 --use_scale_shift_norm
// --dropout 0.3: 52,542,979) and a class-conditional 28x28 one
// (--num_channels 64 --num_res_blocks 2 --channel_mult 1,2,2
// --attention_resolutions 14,7 --num_heads 4 --use_scale_shift_norm
// --class_cond, image_size 28: 7,536,707 with create_model's 3 channels and
// its NUM_CLASSES = 1000; here 10 classes and the null class).
TEST(Adm, ConfigsBuildTheReferenceNetworks) {
  torch::NoGradGuard no_grad;
  ScoreNet cifar = make_score_net(load_config(config_path("vp/cifar10_adm")));
  EXPECT_EQ(count_parameters(*cifar), 52542979);
  EXPECT_EQ(cifar->parameters().size(), 446u);
  ScoreNet fm = make_score_net(load_config(
      config_path("fashion_mnist/adm"),
      {"data.num_classes=10", "data.num_channels=3", "model.class_dropout=0.1"}));
  EXPECT_EQ(count_parameters(*fm), 7536707 - (1000 - 11) * 4 * 64);
  // guided-diffusion's LSUN models (lsun_bedroom.pt's flags; learn_sigma
  // dropped): 552,807,171.
  ScoreNet lsun = make_score_net(load_config(config_path("vp/lsun_bedroom256_adm")));
  EXPECT_EQ(count_parameters(*lsun), 552807171);
  EXPECT_EQ(lsun->parameters().size(), 566u);
}

TEST(Adm, TimestepEmbeddingIsCosThenSin) {
  const auto t = torch::tensor({0.0, 1.5, 999.0});
  const auto e = adm_timestep_embedding(t, 7);  // odd: a zero column at the end
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{3, 7}));
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t i = 0; i < 3; ++i) {
      const double arg = t[b].item<double>() * std::exp(-std::log(10000.0) * i / 3.0);
      EXPECT_NEAR(e[b][i].item<double>(), std::cos(arg), 1e-4);
      EXPECT_NEAR(e[b][3 + i].item<double>(), std::sin(arg), 1e-4);
    }
    EXPECT_EQ(e[b][6].item<double>(), 0.0);
  }
}

// The network is zero-initialised at its output (zero_module), and the
// flat-input form is a view of the signal form.
TEST(Adm, StartsAtZeroAndTakesFlatSignals) {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  ADM net(small().dims(1).image_size(8).in_channels(2).out_channels(2).channel_mult({1, 1})
              .attention_ds({}).flat_shape({2, 8}));
  const auto x = torch::randn({3, 2, 8});
  const auto t = torch::tensor({1.0, 10.0, 100.0});
  net->eval();
  EXPECT_EQ(net->forward(x, t).abs().max().item<double>(), 0.0);
  for (auto& p : net->parameters()) p.add_(0.05 * torch::randn_like(p));
  const auto signal = net->forward(x, t);
  const auto flat = net->forward(x.reshape({3, 16}), t);
  ASSERT_EQ(flat.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_TRUE(torch::equal(flat, signal.reshape({3, 16})));
}

// Class conditioning: the labels change the output, and undefined labels
// mean the null class (the embedding's last row). With 32 channels GroupNorm32
// has one channel per group and removes an added per-channel embedding, as
// in the reference; the FiLM form (use_scale_shift_norm) scales after it.
TEST(Adm, ClassLabelsConditionTheOutput) {
  torch::manual_seed(1);
  torch::NoGradGuard no_grad;
  ADM net(small().image_size(8).num_classes(3).channel_mult({1}).attention_ds({})
              .use_scale_shift_norm(true));
  for (auto& p : net->parameters()) p.add_(0.05 * torch::randn_like(p));
  net->eval();
  const auto x = torch::randn({2, 3, 8, 8});
  const auto t = torch::tensor({5.0, 5.0});
  const auto a = net->forward(x, t, torch::tensor({0, 0}));
  const auto b = net->forward(x, t, torch::tensor({2, 2}));
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(torch::allclose(net->forward(x, t), net->forward(x, t, torch::tensor({3, 3}))));
}

// model.scale_by_sigma (VE): the output divided by sigma, which is time_cond
// itself in continuous time and the level's sigma_max (sigma_min /
// sigma_max)^(i / (N - 1)) in discrete time.
TEST(Adm, ScaleBySigmaDividesByTheNoiseLevel) {
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 3, 8, 8});
  for (const bool continuous : {true, false}) {
    std::vector<std::string> o = {"training.sde=vesde", "model.sigma_min=0.01",
                                  "model.sigma_max=50", "model.num_scales=10",
                                  "data.image_size=8", "model.nf=32", "model.ch_mult=[1]",
                                  "model.num_res_blocks=1", "model.attn_resolutions=[]",
                                  "model.use_scale_shift_norm=true", "model.dropout=0",
                                  std::string("training.continuous=") + (continuous ? "true" : "false")};
    torch::manual_seed(6);
    ScoreNet plain = make_score_net(load_config(config_path("vp/cifar10_adm"), o));
    o.push_back("model.scale_by_sigma=true");
    torch::manual_seed(6);
    ScoreNet scaled = make_score_net(load_config(config_path("vp/cifar10_adm"), o));
    for (auto& p : plain->parameters()) p.add_(0.05);
    for (auto& p : scaled->parameters()) p.add_(0.05);
    const auto tc = continuous ? torch::tensor({0.5, 20.0}) : torch::tensor({0, 7}, torch::kLong);
    const auto sigma = continuous ? tc
                                  : torch::tensor({50.0, 50.0 * std::pow(0.01 / 50.0, 7.0 / 9.0)});
    const auto expected = plain->forward(x, tc) / sigma.view({2, 1, 1, 1});
    EXPECT_TRUE(torch::allclose(scaled->forward(x, tc), expected, 1e-5, 1e-6)) << continuous;
  }
}

TEST(Adm, ConfigErrorsNameTheKey) {
  auto error_of = [](const std::vector<std::string>& overrides) {
    try {
      make_score_net(load_config(config_path("vp/cifar10_adm"), overrides));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of({"model.nf=48"}).find("GroupNorm32"), std::string::npos);
  EXPECT_NE(error_of({"model.num_heads=3"}).find("model.num_heads"), std::string::npos);
  EXPECT_NE(error_of({"model.num_head_channels=48"}).find("model.num_head_channels"),
            std::string::npos);
  EXPECT_NE(error_of({"model.attn_resolutions=[12]"}).find("model.attn_resolutions"),
            std::string::npos);
  EXPECT_NE(error_of({"model.dims=1"}).find("model.dims"), std::string::npos);
  EXPECT_NE(error_of({"model.dims=3", "data.dataset=hdf5", "data.path=x", "data.dim=100"})
                .find("data.depth"),
            std::string::npos);
  EXPECT_NE(error_of({"model.scale_by_sigma=true"}).find("vesde"), std::string::npos);
}

}  // namespace
}  // namespace scorch
