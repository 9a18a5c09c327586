// Import of openai/guided-diffusion model files (nn/import_guided_diffusion.h):
// the imported ADM gives the reference's eps prediction, Scorch's discrete VP
// score of it is -eps / sqrt(1 - abar_i) for guided-diffusion's linear
// schedule computed here from its betas, and mismatched configs are errors
// naming the file and the key.
//
// tests/nn/data/guided_diffusion/gd_tiny_model.pt was produced once, outside
// this repository, by openai/guided-diffusion @22e0df8 under Debian's
// python3-torch 1.13: UNetModel(image_size=8, in_channels=3,
// model_channels=32, out_channels=6 (learn_sigma), num_res_blocks=0,
// attention_resolutions=(1,), channel_mult=(1,), num_classes=3,
// num_head_channels=16, use_scale_shift_norm=True) after
// torch.manual_seed(1), every parameter moved by 0.05 N(0, 1), saved as
// torch.save(model.state_dict()) like the released models. gd_tiny_io.pt
// holds x = randn(2, 3, 8, 8), timesteps [10, 500], labels [2, 0] and the
// eval-mode output [2, 6, 8, 8] (float64). No reference code is kept here.
#include "nn/import_guided_diffusion.h"

#include <gtest/gtest.h>

#include "core/config.h"
#include "core/error.h"
#include "nn/adm.h"
#include "nn/model_factory.h"
#include "nn/score_model.h"
#include "nn/torch_load.h"
#include "sde/sde.h"

namespace scorch {
namespace {

std::string data_path(const std::string& file) {
  return std::string(SCORCH_SOURCE_DIR) + "/tests/nn/data/guided_diffusion/" + file;
}

Config tiny_config(std::vector<std::string> overrides = {}) {
  std::vector<std::string> o = {
      "data.image_size=8",        "model.nf=32",          "model.ch_mult=[1]",
      "model.num_res_blocks=0",   "model.attn_resolutions=[8]", "model.num_head_channels=16",
      "model.use_scale_shift_norm=true", "model.dropout=0",     "data.num_classes=3",
      "training.continuous=false"};
  o.insert(o.end(), overrides.begin(), overrides.end());
  return load_config(std::string(SCORCH_SOURCE_DIR) + "/configs/vp/cifar10_adm.yaml", o);
}

TEST(ImportGuidedDiffusion, GivesTheReferenceEpsAndItsLinearScheduleScore) {
  const Config c = tiny_config();
  ScoreNet net = make_score_net(c);
  const auto r = import_guided_diffusion_model(data_path("gd_tiny_model.pt"),
                                               dynamic_cast<ADMImpl&>(*net));
  EXPECT_TRUE(r.learned_sigma);
  EXPECT_EQ(r.num_classes, 3);
  net->eval();
  torch::NoGradGuard no_grad;
  const auto io = load_torch_file(data_path("gd_tiny_io.pt")).toGenericDict();
  const auto x = io.at("x").toTensor(), steps = io.at("t").toTensor(), y = io.at("y").toTensor();
  const auto eps = io.at("out").toTensor().narrow(1, 0, 3);  // [eps, variance]
  const auto out = net->forward(x, steps.to(torch::kFloat), y).to(torch::kDouble);
  EXPECT_LT((out - eps).abs().max().item<double>(), 1e-5 * eps.abs().max().item<double>());

  // Time step i is t = i / (N - 1); the score is -eps / sqrt(1 - abar_i) with
  // guided-diffusion's betas = linspace(1e-4, 0.02, 1000).
  std::shared_ptr<const Sde> sde = make_sde(c);
  const auto t = steps.to(torch::kDouble) / 999.0;
  ASSERT_TRUE(torch::equal((t * 999.0).to(torch::kLong), steps));
  const auto abar = torch::cumprod(1 - torch::linspace(1e-4, 0.02, 1000, torch::kDouble), 0);
  const auto expected = -eps / torch::sqrt(1 - abar.index_select(0, steps)).view({2, 1, 1, 1});
  const auto score = score_fn(*net, *sde, /*continuous=*/false, x, t, y).to(torch::kDouble);
  EXPECT_LT((score - expected).abs().max().item<double>(),
            1e-5 * expected.abs().max().item<double>());
}

TEST(ImportGuidedDiffusion, MismatchedConfigsNameTheFileAndKey) {
  auto error_of = [](const std::vector<std::string>& overrides) {
    const Config c = tiny_config(overrides);
    ScoreNet net = make_score_net(c);
    const auto before = net->named_parameters()["time_embed.0.weight"].clone();
    try {
      import_guided_diffusion_model(data_path("gd_tiny_model.pt"), dynamic_cast<ADMImpl&>(*net));
    } catch (const Error& e) {
      // Nothing was copied.
      EXPECT_TRUE(torch::equal(before, net->named_parameters()["time_embed.0.weight"]));
      return std::string(e.what());
    }
    return std::string();
  };
  const auto width = error_of({"model.nf=64", "model.num_head_channels=16"});
  EXPECT_NE(width.find("gd_tiny_model.pt"), std::string::npos) << width;
  EXPECT_NE(width.find("model.nf"), std::string::npos) << width;
  EXPECT_NE(error_of({"model.num_res_blocks=1"}).find("model.num_res_blocks"), std::string::npos);
  EXPECT_NE(error_of({"data.num_classes=0"}).find("label_emb.weight"), std::string::npos);
  EXPECT_THROW(
      import_guided_diffusion_model(data_path("gd_tiny_io.pt"),
                                    dynamic_cast<ADMImpl&>(*make_score_net(tiny_config()))),
      Error);
}

}  // namespace
}  // namespace scorch
