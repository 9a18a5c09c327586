// The ADM U-Net and patch-based models end to end through the scorch binary:
// 1-D and 3-D signals stored as vector datasets (NumPy -> `scorch data
// convert` -> train -> sample), patch-based training on 16x16 crops of
// Fashion-MNIST whose samples are whole 28x28 images (tiles and whole-image
// sampling), sampling an imported guided-diffusion model, and config errors
// that exit 2 naming the key.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "data/npz.h"                // defines: write_npz
#include "testing/command.h"       // defines: run_scorch, run_command, mpirun_scorch
#include "testing/dependencies.h"  // defines: SCORCH_REQUIRE_OR_SKIP, kFashionMnistDir
#include "testing/temp_dir.h"      // defines: TempDir
#include "testing/vector_data.h"   // defines: read_vectors

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

std::string config(const std::string& name) {
  return std::string(SCORCH_SOURCE_DIR) + "/configs/" + name + ".yaml";
}

// A tiny ADM for the CPU; a step takes a fraction of a second.
const std::string kTinyAdm =
    " model.nf=32 model.ch_mult=[1,2] model.num_res_blocks=1 model.num_heads=2 "
    "training.batch_size=8 training.log_freq=1 training.snapshot_freq=2 "
    "training.snapshot_freq_for_preemption=2 training.snapshot_num_samples=4 "
    "sampling.num_steps=3 training.n_iters=2 data.loader_threads=1";

// Writes `x` [N, D] as an .npz and converts it into a vector dataset.
std::string vector_dataset(const TempDir& tmp, const torch::Tensor& x) {
  const auto npz = (tmp.path / "x.npz").string(), out = (tmp.path / "data").string();
  write_npz(npz, {{"x", x.to(torch::kFloat).contiguous()}});
  auto r = run_scorch("data convert --from npy --input " + npz + " --out " + out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return out;
}

// Trains `args` for two steps in a new workdir, samples 6 from it, returns them.
torch::Tensor train_and_sample(const TempDir& tmp, const std::string& args) {
  const auto w = (tmp.path / "run").string(), s = (tmp.path / "samples").string();
  auto r = run_scorch("train --json --workdir " + w + " " + args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  if (r.exit_code != 0) return {};
  const auto j = nlohmann::json::parse(r.stdout_only);
  EXPECT_EQ(j["step"], 2);
  EXPECT_TRUE(std::isfinite(j["loss"].get<double>()));
  r = run_scorch("sample --no-progress --workdir " + w + " --num 6 --out " + s +
                 " sampling.num_steps=3");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.exit_code == 0 ? read_vectors(s) : torch::Tensor();
}

TEST(ModelZooCli, AdmTrainsAndSamplesOneDimensionalSignals) {
  TempDir tmp("adm1d");
  // 64 two-channel signals of length 16: phase-shifted sines.
  const auto l = torch::arange(16).to(torch::kDouble) / 16.0;
  const auto phase = torch::rand({64, 1, 1}, torch::kDouble);
  const auto ch = torch::tensor({0.0, 1.0}, torch::kDouble).view({1, 2, 1});
  const auto x = (0.5 * torch::sin(2 * M_PI * (l.view({1, 1, 16}) + phase) + ch)).reshape({64, 32});
  const auto data = vector_dataset(tmp, x);
  const auto samples = train_and_sample(
      tmp, "--config " + config("fashion_mnist/adm") + " data.path=" + data +
               " data.dim=32 data.num_channels=2 data.image_size=16 model.dims=1 "
               "model.attn_resolutions=[8]" + kTinyAdm);
  ASSERT_TRUE(samples.defined());
  EXPECT_EQ(samples.sizes(), (std::vector<int64_t>{6, 32}));
  EXPECT_TRUE(torch::isfinite(samples).all().item<bool>());
}

TEST(ModelZooCli, AdmTrainsAndSamplesThreeDimensionalSignals) {
  TempDir tmp("adm3d");
  // 32 one-channel volumes of 2 x 8 x 8.
  const auto x = torch::rand({32, 128}, torch::kDouble) * 2 - 1;
  const auto data = vector_dataset(tmp, x);
  const auto samples = train_and_sample(
      tmp, "--config " + config("fashion_mnist/adm") + " data.path=" + data +
               " data.dim=128 data.num_channels=1 data.depth=2 data.image_size=8 model.dims=3 "
               "model.attn_resolutions=[4]" + kTinyAdm);
  ASSERT_TRUE(samples.defined());
  EXPECT_EQ(samples.sizes(), (std::vector<int64_t>{6, 128}));
  EXPECT_TRUE(torch::isfinite(samples).all().item<bool>());

  // The shape must add up: data.dim against channels x depth x size^2.
  auto r = run_scorch("train --workdir " + (tmp.path / "bad").string() + " --config " +
                      config("fashion_mnist/adm") + " data.path=" + data +
                      " data.dim=128 data.num_channels=1 data.depth=3 data.image_size=8 "
                      "model.dims=3" + kTinyAdm);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("data.num_channels * data.depth * data.image_size^2 = 192"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(tmp.path / "bad" / "checkpoints"));
}

TEST(ModelZooCli, PatchModelTrainsOnCropsAndSamplesWholeImages) {
  SCORCH_REQUIRE_OR_SKIP(fs::exists(kFashionMnistDir),
                         kFashionMnistDir + " (Debian package dataset-fashion-mnist)");
  TempDir tmp("patch16");
  const auto data = (tmp.path / "fmnist").string(), w = (tmp.path / "run").string();
  auto r = run_scorch("data convert --from idx --input " + kFashionMnistDir +
                      " --split test --limit 64 --out " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_scorch("train --json --workdir " + w + " --config " + config("fashion_mnist/patch16") +
                 " data.path=" + data + " model.attn_resolutions=[8]" + kTinyAdm);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.stdout_only)["step"], 2);
  // The snapshot's EMA samples are whole images, assembled from tiles.
  EXPECT_TRUE(fs::exists(fs::path(w) / "samples" / "iter_00000002" / "samples.png"))
      << r.output;
  for (const std::string mode : {"tiles", "full"}) {
    const auto s = (tmp.path / ("s_" + mode)).string();
    r = run_scorch("sample --no-progress --json --workdir " + w + " --num 4 --out " + s +
                   " sampling.num_steps=3 model.patch_sampling=" + mode);
    ASSERT_EQ(r.exit_code, 0) << mode << ": " << r.output;
    r = run_scorch("data verify " + s);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("4 28x28x1 uint8 images"), std::string::npos) << mode << ": " << r.output;
  }
  r = run_scorch("train --workdir " + (tmp.path / "bad").string() + " --config " +
                 config("fashion_mnist/patch16") + " data.path=" + data +
                 " model.patch_size=32" + kTinyAdm);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.patch_size 32 must be smaller than data.image_size 28"),
            std::string::npos)
      << r.output;
}

// A guided-diffusion model file samples through `scorch sample`: the tiny
// class-conditional learn_sigma model of tests/nn/data/guided_diffusion (see
// tests/nn/import_guided_diffusion_test.cpp) with DDIM on the discrete VP SDE.
TEST(ModelZooCli, GuidedDiffusionModelSamples) {
  TempDir tmp("gd_sample");
  const std::string model =
      std::string(SCORCH_SOURCE_DIR) + "/tests/nn/data/guided_diffusion/gd_tiny_model.pt";
  const std::string arch =
      " data.image_size=8 model.nf=32 model.ch_mult=[1] model.num_res_blocks=0 "
      "model.attn_resolutions=[8] model.num_head_channels=16 model.use_scale_shift_norm=true "
      "data.num_classes=3 training.continuous=false sampling.method=ddim sampling.num_steps=5";
  const auto out = (tmp.path / "s").string();
  auto r = run_scorch("sample --no-progress --json --guided-diffusion-checkpoint " + model +
                      " --config " + config("vp/cifar10_adm") + " --num 4 --class -1 --out " + out +
                      arch);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("learned variance dropped"), std::string::npos) << r.output;
  r = run_scorch("data verify " + out);
  EXPECT_NE(r.output.find("4 8x8x3 uint8 images"), std::string::npos) << r.output;

  // Continuous time is not the file's convention; a wrong width names the key.
  r = run_scorch("sample --guided-diffusion-checkpoint " + model + " --config " +
                 config("vp/cifar10_adm") + " --num 4 --out " + out + "2" + arch +
                 " training.continuous=true");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("training.continuous=false"), std::string::npos) << r.output;
  r = run_scorch("sample --guided-diffusion-checkpoint " + model + " --config " +
                 config("vp/cifar10_adm") + " --num 4 --out " + out + "3" + arch + " model.nf=64");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.nf (model_channels)"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out + "3"));
}

}  // namespace
}  // namespace scorch::testing
