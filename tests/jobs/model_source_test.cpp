// Where the commands get their config and model (jobs/config_source.h,
// jobs/model_source.h), called as a library: the embedded default is the toy
// config file it is compiled from, a workdir's saved config wins over it, and
// a model source that cannot give a model is an error naming what to pass.
#include <gtest/gtest.h>

#include <fstream>

#include "core/config.h"
#include "jobs/config_source.h"
#include "jobs/model_source.h"
#include "nn/score_model.h"
#include "sde/sde.h"
#include "testing/expect_error.h"
#include "testing/temp_dir.h"

namespace scorch {
namespace {

const std::string kToyConfig = std::string(SCORCH_SOURCE_DIR) +
                               "/configs/toy/eight_gaussians_vp.yaml";

TEST(ConfigSource, EmbeddedDefaultIsTheToyConfigFile) {
  const Config embedded = resolve_config("", "", {});
  const Config file = load_config(kToyConfig, {});
  EXPECT_EQ(to_yaml(embedded), to_yaml(file));
  std::ifstream in(kToyConfig);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, embedded_default_config());
}

TEST(ConfigSource, WorkdirConfigThenOverridesWin) {
  testing::TempDir dir("config_source");
  const Config saved = load_config(kToyConfig, {"seed=17", "training.n_iters=5"});
  std::ofstream(dir.path / "config.yaml") << to_yaml(saved);
  const Config resumed = resolve_config("", dir.str(), {"training.batch_size=32"});
  EXPECT_EQ(resumed.seed, 17u);
  EXPECT_EQ(resumed.training.n_iters, 5);
  EXPECT_EQ(resumed.training.batch_size, 32);
  // An explicit --config wins over the workdir's.
  EXPECT_EQ(resolve_config(kToyConfig, dir.str(), {}).seed, load_config(kToyConfig, {}).seed);
}

TEST(ModelSource, AnalyticModelNeedsNoCheckpoint) {
  testing::TempDir dir("model_source");
  std::ofstream(dir.path / "analytic.yaml")
      << to_yaml(load_config(kToyConfig, {"model.name=analytic", "model.analytic_means=[1,-2]"}));
  ModelSourceArgs a;
  a.config = (dir.path / "analytic.yaml").string();
  const LoadedModel m = load_model(a);
  EXPECT_FALSE(m.net->is_training());
  EXPECT_NE(m.description.find("analytic"), std::string::npos) << m.description;
  // The exact score of data N(mu, s0^2 I) diffused by the SDE: at t, x ~
  // N(m(t) mu, m(t)^2 s0^2 + std(t)^2), whose score is -(x - m(t) mu) / var.
  const double s0 = m.config.model.analytic_std;
  auto x = torch::tensor({{0.5f, 0.25f}});
  auto t = torch::tensor({0.5f});
  const auto mu = torch::tensor({{1.0f, -2.0f}});
  const auto marginal = m.sde->marginal_prob(mu, t);
  const auto scale = marginal.mean / mu;  // m(t)
  const auto var = scale * scale * s0 * s0 + (marginal.std * marginal.std).view({-1, 1});
  torch::NoGradGuard no_grad;
  auto score = make_score_fn(m.net, m.sde, m.config.training.continuous)(x, t);
  auto expected = -(x - marginal.mean) / var;
  EXPECT_TRUE(torch::allclose(score, expected, 1e-4, 1e-5)) << score << expected;

  // A checkpoint that is not there is named.
  a.checkpoint = (dir.path / "none.pt").string();
  testing::expect_error([&] { load_model(a); }, {a.checkpoint, "does not exist"});
}

TEST(ModelSource, WorkdirWithoutCheckpointsNamesTheFix) {
  testing::TempDir dir("model_source_empty");
  ModelSourceArgs a;
  a.workdir = dir.str();
  testing::expect_error([&] { load_model(a); }, {dir.str() + "/checkpoints", "train first"});
  ModelSourceArgs none;
  testing::expect_error([&] { load_model(none); }, {"--workdir W or --checkpoint FILE"});
}

}  // namespace
}  // namespace scorch
