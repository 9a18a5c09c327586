// Import of score_sde_pytorch checkpoints (nn/import_score_sde.h, nn/torch_load.h)
// and equality of Scorch's networks with the reference's outputs.
//
// The data in tests/nn/data/score_sde/ were produced once, outside this
// repository, with yang-song/score_sde_pytorch @cb1f359 run on CPU by
// Debian's python3-torch 1.13 (op/ switched to its pure-PyTorch
// upfirdn2d_native; ml_collections stubbed). For each small config below the
// reference model was built from get_default_configs() plus the listed
// overrides, every trainable parameter got + 0.05 N(0, 1) (so the 1e-10
// "zero" convs matter), wrapped in nn.DataParallel, and saved as run_lib.py
// does: torch.save({'optimizer', 'model': state_dict (module. prefix),
// 'ema': ExponentialMovingAverage.state_dict(), 'step': 4321}). The EMA
// shadow = parameters + 0.02 N(0, 1), num_updates 17 (for ddpm the shadow
// shares the model's storage to keep the file small). <name>_io.pth holds
// x [2, 3, 16, 16], time_cond [2] and the eval-mode outputs of the model and
// of its EMA copy. Two reference bugs on paths these configs use were patched
// in that throwaway copy: layerspp.Upsample's F.interpolate(x, size,
// 'nearest') (passes 'nearest' as scale_factor) and upsample_conv_2d's
// negative-step slice / 4-element stride (StyleGAN2 semantics, as diffusers'
// port). No reference code or generator script is kept here.
#include "nn/import_score_sde.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "nn/model_factory.h"
#include "nn/torch_load.h"

namespace scorch {
namespace {

std::string data_path(const std::string& file) {
  return std::string(SCORCH_SOURCE_DIR) + "/tests/nn/data/score_sde/" + file;
}

struct Case {
  const char* name;    // data file stem
  const char* config;  // Scorch config the overrides apply to
  std::vector<std::string> overrides;
};

const std::vector<std::string> kSmallNcsnpp = {"data.image_size=16", "model.nf=8",
                                               "model.ch_mult=[1,2]", "model.num_res_blocks=1",
                                               "model.attn_resolutions=[8]"};

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

std::vector<Case> cases() {
  return {
      // VE NCSN++: BigGAN blocks, FIR, residual input pyramid, Fourier, scale_by_sigma.
      {"ncsnpp_fir", "ve/cifar10_ncsnpp_continuous", kSmallNcsnpp},
      // VP DDPM++: BigGAN blocks without FIR, sinusoidal embedding, centered data.
      {"ddpmpp", "vp/cifar10_ddpmpp_continuous", kSmallNcsnpp},
      // DDPM-type blocks with FIR conv resampling, output_skip + input_skip (cat),
      // positional labels indexing the sigma table, leaky ReLU, init_scale 0.5.
      {"ncsnpp_skip", "ve/cifar10_ncsnpp_continuous",
       with(kSmallNcsnpp,
            {"model.resblock_type=ddpm", "model.skip_rescale=false",
             "model.progressive=output_skip", "model.progressive_input=input_skip",
             "model.progressive_combine=cat", "model.embedding_type=positional",
             "model.nonlinearity=lrelu", "model.num_scales=10", "model.init_scale=0.5"})},
      // Residual output and input pyramids without FIR.
      {"ncsnpp_residual", "ve/cifar10_ncsnpp_continuous",
       with(kSmallNcsnpp, {"model.fir=false", "model.progressive=residual", "data.centered=true",
                           "model.scale_by_sigma=false"})},
      // DDPM: 32-group GroupNorm, attention at both levels.
      {"ddpm",
       "vp/cifar10_ddpm",
       {"data.image_size=16", "model.nf=32", "model.ch_mult=[1,1]", "model.num_res_blocks=0",
        "model.attn_resolutions=[16,8]"}},
  };
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

class ScoreSdeReference : public ::testing::TestWithParam<Case> {};

TEST_P(ScoreSdeReference, ImportedNetworkReproducesTheReferenceOutputs) {
  const Case& c = GetParam();
  const Config config =
      load_config(std::string(SCORCH_SOURCE_DIR) + "/configs/" + c.config + ".yaml", c.overrides);
  torch::manual_seed(123);  // Scorch's own init is overwritten below
  ScoreNet net = make_score_net(config);
  net->eval();

  const auto io = load_torch_file(data_path(std::string(c.name) + "_io.pth")).toGenericDict();
  const auto x = io.at("x").toTensor();
  const auto t = io.at("time_cond").toTensor();
  const auto expected_model = io.at("out_model").toTensor();
  const auto expected_ema = io.at("out_ema").toTensor();

  const std::string ckpt_path = data_path(std::string(c.name) + "_checkpoint.pth");
  const auto ckpt = import_score_sde_checkpoint(ckpt_path, *net, ImportWeights::kModel);
  EXPECT_EQ(ckpt.step, 4321);
  EXPECT_EQ(ckpt.model.size(), net->named_parameters().size() + net->named_buffers().size());
  const auto params = net->parameters();
  EXPECT_EQ(ckpt.ema.size(), static_cast<size_t>(std::count_if(
                                 params.begin(), params.end(),
                                 [](const torch::Tensor& p) { return p.requires_grad(); })));

  torch::NoGradGuard no_grad;
  const auto out_model = net->forward(x, t);
  ASSERT_EQ(out_model.sizes(), expected_model.sizes());
  const double scale_model = expected_model.abs().max().item<double>();
  const double diff_model = max_abs_diff(out_model, expected_model);
  EXPECT_LE(diff_model, 1e-5 * std::max(1.0, scale_model)) << c.name << " |ref| " << scale_model;

  import_score_sde_checkpoint(ckpt_path, *net, ImportWeights::kEma);
  const auto out_ema = net->forward(x, t);
  const double scale_ema = expected_ema.abs().max().item<double>();
  const double diff_ema = max_abs_diff(out_ema, expected_ema);
  EXPECT_LE(diff_ema, 1e-5 * std::max(1.0, scale_ema)) << c.name << " |ref| " << scale_ema;
  std::printf("[ score_sde ] %-16s max|diff| model %.3g (|ref| %.3g), ema %.3g (|ref| %.3g)\n",
              c.name, diff_model, scale_model, diff_ema, scale_ema);
}

INSTANTIATE_TEST_SUITE_P(Small, ScoreSdeReference, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ScoreSdeImport, ReadsTheEmaStateAndTheStep) {
  const Config config = load_config(
      std::string(SCORCH_SOURCE_DIR) + "/configs/ve/cifar10_ncsnpp_continuous.yaml", kSmallNcsnpp);
  ScoreNet net = make_score_net(config);
  const auto ckpt = read_score_sde_checkpoint(data_path("ncsnpp_fir_checkpoint.pth"), *net);
  EXPECT_DOUBLE_EQ(ckpt.ema_decay, 0.999);
  EXPECT_EQ(ckpt.ema_num_updates, 17);
  EXPECT_EQ(ckpt.step, 4321);
  // The frozen Fourier W is model state, not EMA state; sigmas is a buffer.
  EXPECT_TRUE(ckpt.model.count("all_modules.0.W"));
  EXPECT_FALSE(ckpt.ema.count("all_modules.0.W"));
  EXPECT_EQ(ckpt.model.at("sigmas").scalar_type(), torch::kFloat64);
  // EMA differs from the raw weights by the generator's 0.02 N(0, 1).
  const auto diff = (ckpt.ema.at("all_modules.1.weight") - ckpt.model.at("all_modules.1.weight"));
  EXPECT_NEAR(diff.std().item<double>(), 0.02, 0.01);
}

void expect_error_mentioning(const std::function<void()>& f,
                             const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no scorch::Error";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const auto& p : parts) EXPECT_NE(what.find(p), std::string::npos) << what;
  }
}

TEST(ScoreSdeImport, MismatchesNameTheKeyAndTheFile) {
  const std::string path = data_path("ncsnpp_fir_checkpoint.pth");
  // Wider network: shapes differ.
  const Config wider =
      load_config(std::string(SCORCH_SOURCE_DIR) + "/configs/ve/cifar10_ncsnpp_continuous.yaml",
                  with(kSmallNcsnpp, {"model.nf=16"}));
  ScoreNet net = make_score_net(wider);
  expect_error_mentioning([&] { read_score_sde_checkpoint(path, *net); },
                          {path, "module.all_modules.0.W", "shape"});
  // A Scorch parameter the checkpoint lacks (class conditioning).
  const Config classes =
      load_config(std::string(SCORCH_SOURCE_DIR) + "/configs/ve/cifar10_ncsnpp_continuous.yaml",
                  with(kSmallNcsnpp, {"data.num_classes=10"}));
  ScoreNet cond = make_score_net(classes);
  expect_error_mentioning([&] { read_score_sde_checkpoint(path, *cond); },
                          {path, "class_embedding"});
  // A checkpoint key Scorch lacks (deeper reference network vs. fewer blocks here).
  const Config fewer =
      load_config(std::string(SCORCH_SOURCE_DIR) + "/configs/ve/cifar10_ncsnpp_continuous.yaml",
                  with(kSmallNcsnpp, {"model.num_res_blocks=0"}));
  ScoreNet shallow = make_score_net(fewer);
  expect_error_mentioning([&] { read_score_sde_checkpoint(path, *shallow); }, {path, "module."});
}

TEST(ScoreSdeImport, UnreadableFilesAreClearErrors) {
  const Config config = load_config(
      std::string(SCORCH_SOURCE_DIR) + "/configs/ve/cifar10_ncsnpp_continuous.yaml", kSmallNcsnpp);
  ScoreNet net = make_score_net(config);
  expect_error_mentioning([&] { read_score_sde_checkpoint("/nonexistent/checkpoint.pth", *net); },
                          {"/nonexistent/checkpoint.pth", "cannot be read"});
  const std::string junk = ::testing::TempDir() + "/scorch_not_a_checkpoint.pth";
  std::ofstream(junk) << "not a zip archive";
  expect_error_mentioning([&] { read_score_sde_checkpoint(junk, *net); }, {junk, "zip"});
  // A torch.save file whose top level is not a checkpoint.
  const std::string io = data_path("ncsnpp_fir_io.pth");
  expect_error_mentioning([&] { read_score_sde_checkpoint(io, *net); }, {io, "'model'"});
}

}  // namespace
}  // namespace scorch
