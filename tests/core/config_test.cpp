// Config: YAML reading, overrides, errors that name the key and suggest the
// closest valid one, and the resolved-config round trip.
#include "core/config.h"

#include <gtest/gtest.h>

#include <sstream>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/suggest.h"

namespace scorch {
namespace {

// The message of the scorch::Error that `f` throws ("" if none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsFollowScoreSde) {
  Config c;
  EXPECT_EQ(c.optim.lr, 2e-4);
  EXPECT_EQ(c.optim.warmup, 5000);
  EXPECT_EQ(c.optim.grad_clip, 1.0);
  EXPECT_EQ(c.model.num_scales, 1000);
  EXPECT_EQ(c.model.beta_min, 0.1);
  EXPECT_EQ(c.model.beta_max, 20.0);
  EXPECT_EQ(c.model.sigma_min, 0.01);
  EXPECT_EQ(c.model.sigma_max, 50.0);
  EXPECT_EQ(c.sampling.snr, 0.16);
  EXPECT_EQ(c.training.eps, 1e-5);
}

TEST(Config, ReadsYamlAndOverrides) {
  const char* yaml = R"(
seed: 7
training:
  sde: vesde
  batch_size: 64
model:
  ch_mult: [1, 2]
  ema_extra_rates: [0.99, 0.999]
)";
  Config c = parse_config(
      yaml, "test.yaml",
      {"training.batch_size=32", "optim.lr=1e-3", "data.centered=true", "model.ch_mult=[1,2,4]"});
  EXPECT_EQ(c.seed, 7);
  EXPECT_EQ(c.training.sde, SdeKind::kVE);
  EXPECT_EQ(c.training.batch_size, 32);  // override wins
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_TRUE(c.data.centered);
  EXPECT_EQ(c.model.ch_mult, (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(c.model.ema_extra_rates, (std::vector<double>{0.99, 0.999}));
}

TEST(Config, UnknownKeySuggestsClosest) {
  auto msg = error_of([] { parse_config("training:\n  batch_sise: 4\n", "run.yaml"); });
  EXPECT_NE(msg.find("run.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("training.batch_sise"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'training.batch_size'"), std::string::npos) << msg;

  msg = error_of([] { parse_config("", "x", {"optim.lrr=0.1"}); });
  EXPECT_NE(msg.find("did you mean 'optim.lr'"), std::string::npos) << msg;

  msg = error_of([] { parse_config("trainin:\n  sde: vpsde\n", "x"); });
  EXPECT_NE(msg.find("unknown key 'trainin"), std::string::npos) << msg;
}

TEST(Config, IllTypedValuesNameTheKey) {
  auto msg = error_of([] { parse_config("training:\n  batch_size: many\n", "x"); });
  EXPECT_NE(msg.find("'training.batch_size' must be a integer"), std::string::npos) << msg;
  msg = error_of([] { parse_config("", "x", {"data.centered=maybe"}); });
  EXPECT_NE(msg.find("'data.centered' must be true or false"), std::string::npos) << msg;
  msg = error_of([] { parse_config("model:\n  ch_mult: 2\n", "x"); });
  EXPECT_NE(msg.find("'model.ch_mult' must be a list of integers"), std::string::npos) << msg;
  msg = error_of([] { parse_config("training:\n  sde: vpsdee\n", "x"); });
  EXPECT_NE(msg.find("did you mean 'vpsde'"), std::string::npos) << msg;
}

TEST(Config, OutOfRangeValues) {
  auto msg = error_of([] { parse_config("", "x", {"training.batch_size=0"}); });
  EXPECT_NE(msg.find("'training.batch_size' = 0 is out of range; expected in [1, "),
            std::string::npos)
      << msg;
  msg = error_of([] { parse_config("", "x", {"model.ema_rate=1.5"}); });
  EXPECT_NE(msg.find("in [0, 1]"), std::string::npos) << msg;
  msg = error_of([] { parse_config("", "x", {"model.sigma_min=60"}); });
  EXPECT_NE(msg.find("model.sigma_min"), std::string::npos) << msg;
  msg = error_of([] { parse_config("", "x", {"optim.lr=nan"}); });
  EXPECT_NE(msg.find("optim.lr"), std::string::npos) << msg;
}

TEST(Config, CrossKeyChecks) {
  auto msg = error_of([] { parse_config("", "x", {"model.name=ncsnpp"}); });
  EXPECT_NE(msg.find("use model.name=mlp"), std::string::npos) << msg;
  msg = error_of([] {
    parse_config("", "x",
                 {"data.dataset=synthetic_images", "model.name=ddpm", "data.image_size=30"});
  });
  EXPECT_NE(msg.find("data.image_size"), std::string::npos) << msg;
  msg = error_of([] { parse_config("", "x", {"training.loss=smld"}); });
  EXPECT_NE(msg.find("training.sde=vesde"), std::string::npos) << msg;
}

// model.precond and the EDM losses: each invalid combination names the key and
// what would be right.
TEST(Config, PrecondAndEdmLossChecks) {
  const Config ok = parse_config("", "x", {"model.precond=edm", "training.loss=edm"});
  EXPECT_EQ(ok.model.precond, Precond::kEDM);
  EXPECT_EQ(ok.training.loss, LossName::kEdm);
  EXPECT_EQ(Config().model.precond, Precond::kNone);
  auto msg = error_of([] { parse_config("", "x", {"training.loss=edm_vp"}); });
  EXPECT_NE(msg.find("needs model.precond=vp, ve or edm"), std::string::npos) << msg;
  msg = error_of([] { parse_config("", "x", {"model.name=analytic", "model.precond=ve"}); });
  EXPECT_NE(msg.find("model.precond=ve wraps a network"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.name mlp, ddpm, ncsnpp or adm"), std::string::npos) << msg;
  msg = error_of([] {
    parse_config("", "x", {"model.precond=vp", "training.continuous=false"});
  });
  EXPECT_NE(msg.find("needs training.continuous=true"), std::string::npos) << msg;
  msg = error_of([] {
    parse_config("", "x", {"model.precond=edm", "training.sde=vesde", "model.scale_by_sigma=true"});
  });
  EXPECT_NE(msg.find("set model.scale_by_sigma=false"), std::string::npos) << msg;
  // NCSN++'s Fourier features take c_noise itself under precond (EDM's NCSN++).
  EXPECT_NO_THROW(parse_config("", "x", {"data.dataset=synthetic_images", "model.name=ncsnpp",
                                         "model.embedding_type=fourier", "model.precond=edm"}));
  msg = error_of([] {
    parse_config("", "x", {"data.dataset=synthetic_images", "model.name=ncsnpp",
                           "model.patch_size=16", "model.precond=edm"});
  });
  EXPECT_NE(msg.find("set model.patch_size=0 or model.precond=none"), std::string::npos) << msg;
  msg = error_of([] { parse_config("", "x", {"model.precond=edm", "training.p_std=0"}); });
  EXPECT_NE(msg.find("training.p_std"), std::string::npos) << msg;
}

TEST(Config, BadOverrideSyntax) {
  auto msg = error_of([] { parse_config("", "x", {"training.batch_size"}); });
  EXPECT_NE(msg.find("expected key.path=value"), std::string::npos) << msg;
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config c = parse_config("", "x",
                          {"optim.lr=0.000123456789", "model.ema_extra_rates=[0.5]",
                           "data.path=/tmp/a b", "training.sde=vesde"});
  Config back = parse_config(to_yaml(c), "resolved");
  EXPECT_EQ(to_yaml(back), to_yaml(c));
  EXPECT_DOUBLE_EQ(back.optim.lr, 0.000123456789);
  EXPECT_EQ(back.data.path, "/tmp/a b");
  EXPECT_EQ(back.model.ema_extra_rates, std::vector<double>{0.5});
}

TEST(Config, MissingFileIsAnError) {
  auto msg = error_of([] { load_config("/nonexistent/config.yaml"); });
  EXPECT_NE(msg.find("/nonexistent/config.yaml"), std::string::npos) << msg;
  msg = error_of([] { parse_config("training: [1, 2\n", "broken.yaml"); });
  EXPECT_NE(msg.find("broken.yaml: not valid YAML"), std::string::npos) << msg;
}

TEST(Config, ShippedConfigsLoad) {
  const std::filesystem::path root = std::filesystem::path(SCORCH_SOURCE_DIR) / "configs";
  int n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(load_config(e.path().string())) << e.path();
    ++n;
  }
  EXPECT_GE(n, 3);
}

TEST(Config, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
}

TEST(Config, SamplingDefaultsDependOnSde) {
  EXPECT_DOUBLE_EQ(sampling_eps(parse_config("", "x", {"training.sde=vesde"})), 1e-5);
  EXPECT_DOUBLE_EQ(sampling_eps(parse_config("", "x", {"training.sde=subvpsde"})), 1e-3);
  EXPECT_EQ(sampling_steps(parse_config("", "x", {"model.num_scales=77"})), 77);
}

// sampling.num_steps=0 takes each method's default from one table, which the
// config reference prints; an explicit value wins for every method.
TEST(Config, SamplingStepsDefaultPerMethodFromOneTable) {
  const std::string doc = sampling_steps_defaults();
  for (const auto& method : choice_names<SamplingMethod>()) {
    const Config c = parse_config("", "x", {"sampling.method=" + method, "model.num_scales=77"});
    const int64_t steps = sampling_steps(c);
    const std::string shown = method == "pc" ? "model.num_scales" : std::to_string(steps);
    EXPECT_NE(doc.find(shown + " (" + method + ")"), std::string::npos) << doc;
    if (method == "pc") {
      EXPECT_EQ(steps, 77);
    } else {
      EXPECT_GT(steps, 0);
    }
    EXPECT_EQ(sampling_steps(parse_config("", "x", {"sampling.method=" + method,
                                                    "sampling.num_steps=9"})),
              9);
    // PC trajectories of any model take PC's count.
    EXPECT_EQ(sampling_steps(c, SamplingMethod::kPc), 77);
  }
  EXPECT_NE(config_reference_markdown().find(doc), std::string::npos);
}

TEST(Config, EveryNumberIsCheckedAgainstTheRangeItsUseNeeds) {
  // Values a fuzzer tries: beyond float32 (a tensor value would overflow),
  // beyond int64, not finite. Each must be refused naming its key.
  int checked = 0;
  for (const auto& key : config_keys()) {
    const bool list = key.type.rfind("list of", 0) == 0;
    if (key.type != "integer" && key.type != "number" && !list) continue;
    const bool integer = key.type == "integer" || key.type == "list of integers";
    for (const std::string v : {"1.0e+308", "-1.0e+308", "3.5e+38", "1e30", ".nan", ".inf"}) {
      if (v == "1e30" && !integer) continue;  // a float32 value: the key's own range decides
      // The fp16 loss scale may start past float32: overflowing steps are
      // skipped while it backs off (DistributedTrain.Fp16LossScaling...).
      if (key.path == "precision.initial_scale" && (v == "1.0e+308" || v == "3.5e+38")) continue;
      const std::string value = list ? "[" + v + "]" : v;
      const auto msg = error_of([&] { parse_config("", "x", {key.path + "=" + value}); });
      EXPECT_NE(msg.find(key.path), std::string::npos)
          << key.path << "=" << value << " was accepted or not named: " << msg;
    }
    ++checked;
  }
  EXPECT_GT(checked, 60);
  const auto msg = error_of([] { parse_config("", "x", {"optim.lr=1.0e+308"}); });
  EXPECT_NE(msg.find("representable in float32"), std::string::npos) << msg;
  EXPECT_NO_THROW(parse_config("", "x", {"optim.lr=3.0e+38"}));  // float32, if unwise
}

TEST(Config, ChoicesAreParsedOnceIntoEnums) {
  const Config c = parse_config("", "x", {"training.sde=subvpsde", "sampling.method=ode",
                                          "sampling.ode_method=bosh3", "model.nonlinearity=elu"});
  EXPECT_EQ(c.training.sde, SdeKind::kSubVP);
  EXPECT_EQ(c.sampling.method, SamplingMethod::kOde);
  EXPECT_EQ(c.sampling.ode_method, OdeMethod::kBogackiShampine);
  EXPECT_EQ(c.model.nonlinearity, Activation::kELU);
  EXPECT_NE(to_yaml(c).find("sde: \"subvpsde\""), std::string::npos) << to_yaml(c);
  // Every name of every choice round-trips through the enum.
  for (const auto& key : config_keys()) {
    if (key.type != "string" || key.allowed.empty()) continue;
    std::stringstream names(key.allowed);
    std::string name;
    while (std::getline(names, name, ',')) {
      name.erase(0, name.find_first_not_of(' '));
      std::vector<std::string> o{key.path + "=" + name};
      try {
        const Config parsed = parse_config("", "x", o);
        EXPECT_NE(to_yaml(parsed).find("\"" + name + "\""), std::string::npos) << key.path;
      } catch (const Error& e) {  // a value that needs other keys: the message says which
        EXPECT_EQ(std::string(e.what()).find("is not one of"), std::string::npos) << e.what();
      }
    }
  }
  const auto msg = error_of([] { parse_config("", "x", {"sampling.method=dpm"}); });
  EXPECT_NE(msg.find("'sampling.method' = 'dpm' is not one of {pc, ode, edm, ddim, "
                     "dpm_solver_pp, unipc}; did you mean"),
            std::string::npos)
      << msg;
}

TEST(Config, ReferenceHasARowPerKey) {
  const std::string md = config_reference_markdown();
  for (const auto& key : config_keys())
    EXPECT_NE(md.find("| `" + key.path + "` | " + key.type + " | `" + key.default_value),
              std::string::npos)
        << key.path;
  EXPECT_NE(md.find("| `training.sde` | string | `\"vpsde\"` | vesde, vpsde, subvpsde |"),
            std::string::npos);
  EXPECT_NE(md.find("| `model.sigma_max` | number | `50.0` | [1e-18, 1e+18], finite float32 |"),
            std::string::npos);
}

}  // namespace
}  // namespace scorch
