// End-to-end: score_sde's CIFAR-10 configs, shrunk, train on synthetic
// images through the whole loop (U-Net, loss, EMA, checkpoint, PC-sampled
// snapshot) and resume; the image path of the trainer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "testing/command.h"   // defines: run_scorch, run_command, mpirun_scorch
#include "testing/temp_dir.h"  // defines: TempDir

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

const std::string kTiny =
    "data.dataset=synthetic_images data.image_size=8 model.ch_mult=[1,2] model.num_res_blocks=1 "
    "model.attn_resolutions=[4] training.batch_size=4 training.n_iters=4 training.log_freq=2 "
    "training.snapshot_freq=4 training.snapshot_freq_for_preemption=2 "
    "training.snapshot_num_samples=4 sampling.batch_size=4";

void train_and_check(const std::string& config, const std::string& overrides) {
  TempDir dir("cli_images");
  auto r = run_scorch("train --json --config " + std::string(SCORCH_SOURCE_DIR) + "/" + config +
                      " --workdir " + dir.str() + " " + kTiny + " " + overrides);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto result = nlohmann::json::parse(r.stdout_only);
  EXPECT_EQ(result["step"], 4);
  EXPECT_TRUE(std::isfinite(result["loss"].get<double>()));
  EXPECT_TRUE(fs::exists(dir.path / "samples" / "iter_00000004" / "samples.png"));
  EXPECT_TRUE(fs::exists(dir.path / "checkpoints" / "checkpoint_00000004.pt"));
  // Two more steps resume from step 4.
  r = run_scorch("train --json --workdir " + dir.str() + " training.n_iters=6");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.stdout_only)["start_step"], 4);
  EXPECT_TRUE(fs::exists(dir.path / "checkpoints" / "checkpoint_00000006.pt"));
}

TEST(TrainImages, NcsnppVeContinuous) {
  train_and_check("configs/ve/cifar10_ncsnpp_continuous.yaml", "model.nf=16 model.num_scales=10");
}

// Class-conditional, with label dropout to the null class.
TEST(TrainImages, DdpmppSubVpContinuous) {
  train_and_check("configs/subvp/cifar10_ddpmpp_continuous.yaml",
                  "model.nf=16 model.num_scales=50 sampling.num_steps=10 data.num_classes=4 "
                  "model.class_dropout=0.2");
}

TEST(TrainImages, DdpmVpDiscrete) {
  train_and_check("configs/vp/cifar10_ddpm.yaml", "model.nf=32 model.num_scales=50");
}

TEST(TrainImages, MismatchedCheckpointIsAClearError) {
  TempDir dir("cli_images_mismatch");
  const std::string config =
      "--config " + std::string(SCORCH_SOURCE_DIR) + "/configs/vp/cifar10_ddpm.yaml";
  ASSERT_EQ(run_scorch("train " + config + " --workdir " + dir.str() + " " + kTiny +
                       " model.nf=32 model.num_scales=50")
                .exit_code,
            0);
  // Same workdir, a wider network: the checkpoint cannot be loaded into it.
  auto r = run_scorch("train " + config + " --workdir " + dir.str() + " " + kTiny +
                      " model.nf=64 model.num_scales=50 training.n_iters=8");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("checkpoint_00000004.pt"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir.path / "checkpoints" / "checkpoint_00000004.pt"))
      << "the saved checkpoint is kept";
}

}  // namespace
}  // namespace scorch::testing
