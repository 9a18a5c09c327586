// End-to-end with EDM2 (model.name=edm2, training.loss=edm2): a tiny EDM2-XS
// config trains on synthetic images, checkpoints and resumes exactly; the
// EMA weights are never written by a forward pass (snapshots and sampling
// run the network in eval mode, so forced weight normalization stays out of
// them); and a bare EDM2 Precond state dict saved from Python
// (tests/nn/data/edm2/edm2_tiny_state.pt, tests/nn/edm2_test.cpp says how it
// was made) samples through `scorch sample --checkpoint` with a config of its
// preset, while a config of another preset exits 2 naming both.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "jobs/model_source.h"
#include "nn/score_model.h"
#include "sampling/conditional.h"
#include "sampling/sampler.h"
#include "testing/command.h"   // defines: run_scorch
#include "testing/files.h"     // defines: read_file
#include "testing/temp_dir.h"  // defines: TempDir
#include "train/checkpoint.h"
#include "train/ema.h"

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

std::string source(const std::string& path) { return std::string(SCORCH_SOURCE_DIR) + "/" + path; }

// EDM2's preset shrunk to the fixture's network (Precond(16, 3,
// model_channels=8, channel_mult=[1, 2], channel_mult_noise=2, num_blocks=1,
// attn_resolutions=[8], channels_per_head=8)).
const std::string kArch =
    " data.image_size=16 model.nf=8 model.edm2_channel_mult=[1,2] model.edm2_channel_mult_noise=2"
    " model.edm2_num_blocks=1 model.edm2_attn_resolutions=[8] model.edm2_channels_per_head=8"
    " sampling.num_steps=3 sampling.batch_size=4 data.dataset=synthetic_images";
const std::string kTrain =
    " --config " + source("configs/edm2/img64-xs.yaml") + kArch +
    " data.num_classes=0 training.batch_size=4 training.log_freq=2"
    " training.snapshot_freq=2 training.snapshot_freq_for_preemption=2"
    " training.snapshot_num_samples=4 optim.warmup=2 optim.ref_steps=2";

void expect_same_state(const CheckpointData& a, const CheckpointData& b) {
  ASSERT_EQ(a.model.size(), b.model.size());
  for (const auto& [name, t] : a.model) EXPECT_TRUE(torch::equal(t, b.model.at(name))) << name;
  ASSERT_EQ(a.ema.size(), b.ema.size());
  for (const auto& [ema, shadows] : a.ema)
    for (const auto& [name, t] : shadows)
      EXPECT_TRUE(torch::equal(t, b.ema.at(ema).at(name))) << ema << " " << name;
}

TEST(Edm2Commands, TrainsWithTheEdm2LossCheckpointsAndResumesExactly) {
  TempDir straight("edm2_straight"), resumed("edm2_resumed");
  auto r = run_scorch("train --json --workdir " + straight.str() + kTrain + " training.n_iters=4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto result = nlohmann::json::parse(r.stdout_only);
  EXPECT_EQ(result["step"], 4);
  EXPECT_EQ(result["skipped_steps"], 0);
  EXPECT_TRUE(std::isfinite(result["loss"].get<double>()));
  EXPECT_TRUE(fs::exists(straight.path / "samples" / "iter_00000004" / "samples.png"));
  const auto config = load_config((straight.path / "config.yaml").string());
  EXPECT_EQ(config.training.loss, LossName::kEdm2);
  EXPECT_TRUE(resolved_zero_nonfinite_grads(config));

  r = run_scorch("train --workdir " + resumed.str() + kTrain + " training.n_iters=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_scorch("train --json --workdir " + resumed.str() + kTrain + " training.n_iters=4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.stdout_only)["start_step"], 2);
  EXPECT_EQ(read_file(straight.path / "checkpoints" / "checkpoint_00000004.pt"),
            read_file(resumed.path / "checkpoints" / "checkpoint_00000004.pt"))
      << "a resumed run must end with the same state as a straight one";
}

// Forced weight normalization writes the weights in every training-mode
// forward; EMA weights (which are not normalized: an average of normalized
// weights is not) must never see one.
TEST(Edm2Commands, SamplingAndSnapshotsNeverWriteTheEmaWeights) {
  TempDir with("edm2_snap"), without("edm2_nosnap");
  ASSERT_EQ(run_scorch("train --workdir " + with.str() + kTrain + " training.n_iters=4").exit_code,
            0);
  ASSERT_EQ(run_scorch("train --workdir " + without.str() + kTrain +
                       " training.n_iters=4 training.snapshot_sampling=false")
                .exit_code,
            0);
  ASSERT_TRUE(fs::exists(with.path / "samples" / "iter_00000002" / "samples.png"));
  ASSERT_FALSE(fs::exists(without.path / "samples" / "iter_00000002" / "samples.png"));
  // The snapshot at step 2 (EMA weights swapped into the network) changed
  // neither the trained weights nor any EMA.
  const auto ckpt = load_checkpoint((with.path / "checkpoints" / "checkpoint_00000004.pt").string());
  expect_same_state(ckpt,
                    load_checkpoint((without.path / "checkpoints" / "checkpoint_00000004.pt").string()));

  // `scorch sample`'s model: the first EMA, in eval mode; sampling it
  // leaves its weights as the checkpoint holds them.
  ModelSourceArgs a;
  a.workdir = with.str();
  LoadedModel m = load_model(a);
  EXPECT_FALSE(m.net->is_training());
  const auto& ema = ckpt.ema.at(Ema::configured_names(m.config.model).front());
  const auto check_weights = [&](bool want_equal) {
    bool all_equal = true;
    for (const auto& item : m.net->named_parameters())
      if (ema.count(item.key())) all_equal &= torch::equal(item.value(), ema.at(item.key()));
    EXPECT_EQ(all_equal, want_equal);
  };
  check_weights(true);
  {
    torch::NoGradGuard no_grad;
    const auto score = make_score_fn(m.net, m.sde, m.config.training.continuous);
    const auto denoiser = make_precond_denoiser(m.net);
    std::vector<int64_t> shape{4};
    for (int64_t d : sample_shape(m.config)) shape.push_back(d);
    const auto x = sample_from_config(m.config, *m.sde, score, shape, {}, {}, denoiser).x;
    EXPECT_TRUE(torch::isfinite(x).all().item<bool>());
  }
  check_weights(true);
  // The test can fail: one training-mode forward normalizes the weights.
  m.net->train();
  {
    torch::NoGradGuard no_grad;
    (void)m.net->forward(torch::randn({1, 3, 16, 16}), torch::ones({1}));
  }
  check_weights(false);
}

TEST(Edm2Commands, SamplesAnEdm2StateDictSavedFromPython) {
  TempDir tmp("edm2_state_dict");
  const std::string file = source("tests/nn/data/edm2/edm2_tiny_state.pt");
  const std::string config = source("configs/edm2/img64-xs.yaml");
  const auto out = (tmp.path / "s").string();
  auto r = run_scorch("sample --no-progress --json --checkpoint " + file + " --config " + config +
                      " --num 4 --out " + out + kArch + " data.num_classes=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("EDM2 state dict"), std::string::npos) << r.output;
  r = run_scorch("data verify " + out);
  EXPECT_NE(r.output.find("4 16x16x3 uint8 images"), std::string::npos) << r.output;

  // Another preset's width: exit 2 naming the file, the config and the key.
  r = run_scorch("sample --checkpoint " + file + " --config " + config + " --num 4 --out " + out +
                 "2" + kArch + " data.num_classes=3 model.nf=16");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("edm2_tiny_state.pt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("img64-xs.yaml"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("model.nf=16"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out + "2"));
  // No config: the file has none.
  r = run_scorch("sample --checkpoint " + file + " --num 4 --out " + out + "3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--config"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace scorch::testing
