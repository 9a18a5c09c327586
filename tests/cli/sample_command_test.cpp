// scorch sample end to end: analytic scores give the target's moments through
// the whole pipeline (sampler, storage, dataset); trained workdirs and
// checkpoints sample with EMA or raw weights, reproducibly by seed; bad
// inputs exit 2 naming the problem.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "testing/command.h"      // defines: run_scorch, run_command, mpirun_scorch
#include "testing/temp_dir.h"     // defines: TempDir
#include "testing/vector_data.h"  // defines: read_vectors

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

const std::string kToyConfig = std::string(SCORCH_SOURCE_DIR) + "/configs/toy/eight_gaussians_vp.yaml";

TEST(SampleCli, AnalyticMixtureMomentsThroughThePipeline) {
  TempDir tmp("sample_analytic");
  const auto out = (tmp.path / "s").string();
  // Components at (0, 2) and (2, 0), std 0.5, weights 1:3.
  auto r = run_scorch("sample --json --no-progress --config " + kToyConfig + " --num 4000 --out " +
                      out + " model.name=analytic model.analytic_means=[0,2,2,0] " +
                      "model.analytic_weights=[1,3] sampling.num_steps=300");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.stdout_only);
  EXPECT_EQ(j["num_samples"], 4000);
  EXPECT_EQ(j["nfe"], 300);  // Euler-Maruyama, no corrector: one evaluation per step
  EXPECT_EQ(j["method"], "pc");  // choices by their config names, never numbers
  EXPECT_GT(j["samples_per_s"].get<double>(), 0);
  EXPECT_TRUE(fs::exists(tmp.path / "s.png"));
  auto x = read_vectors(out).to(torch::kDouble);
  // mean = 0.25 (0, 2) + 0.75 (2, 0) = (1.5, 0.5); var per axis = 0.25 + w(1-w) 4 = 1.0;
  // cov(x, y) = -w(1-w) * 4 = -0.75.
  auto mean = x.mean(0);
  auto xc = x - mean;
  auto cov = xc.t().matmul(xc) / (x.size(0) - 1);
  const double se = std::sqrt(1.0 / 4000);
  EXPECT_NEAR(mean[0].item<double>(), 1.5, 4 * se + 0.02);
  EXPECT_NEAR(mean[1].item<double>(), 0.5, 4 * se + 0.02);
  EXPECT_NEAR(cov[0][0].item<double>(), 1.0, 0.08);
  EXPECT_NEAR(cov[1][1].item<double>(), 1.0, 0.08);
  EXPECT_NEAR(cov[0][1].item<double>(), -0.75, 0.08);
}

TEST(SampleCli, TrainedWorkdirEmaAndSeeds) {
  TempDir tmp("sample_trained");
  const auto w = (tmp.path / "run").string();
  auto r = run_scorch("train --workdir " + w + " training.n_iters=30 training.snapshot_freq=30 " +
                      "training.snapshot_sampling=false training.batch_size=64");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string common = " --no-progress --num 300 --batch 128 sampling.num_steps=20 ";
  auto sample = [&](const std::string& name, const std::string& extra) {
    auto res = run_scorch("sample --workdir " + w + common + "--out " +
                          (tmp.path / name).string() + " " + extra);
    EXPECT_EQ(res.exit_code, 0) << res.output;
    return read_vectors((tmp.path / name).string());
  };
  auto a = sample("a", "--seed 5");
  auto b = sample("b", "--seed 5");
  auto c = sample("c", "--seed 6");
  auto raw = sample("raw", "--seed 5 --weights model");
  EXPECT_EQ(a.size(0), 300);
  EXPECT_TRUE(torch::equal(a, b)) << "same seed, same samples";
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_FALSE(torch::equal(a, raw)) << "EMA and raw weights differ after 30 steps";
  // A checkpoint file stands in for the workdir.
  auto res = run_scorch("sample --checkpoint " + w + "/checkpoints/checkpoint_00000030.pt" + common +
                        "--seed 5 --out " + (tmp.path / "ck").string());
  ASSERT_EQ(res.exit_code, 0) << res.output;
  EXPECT_TRUE(torch::equal(read_vectors((tmp.path / "ck").string()), a));

  // Bad inputs.
  res = run_scorch("sample --workdir " + w + common + "--out " + (tmp.path / "a").string());
  EXPECT_EQ(res.exit_code, 2) << res.output;
  EXPECT_NE(res.output.find("already exists"), std::string::npos) << res.output;
  res = run_scorch("sample --workdir " + w + common + "--weights 0.5 --out " +
                   (tmp.path / "x").string());
  EXPECT_EQ(res.exit_code, 2) << res.output;
  EXPECT_NE(res.output.find("has no EMA '0.5'"), std::string::npos) << res.output;
  res = run_scorch("sample --workdir " + (tmp.path / "empty").string() + common + "--out " +
                   (tmp.path / "y").string());
  EXPECT_EQ(res.exit_code, 2) << res.output;
  EXPECT_NE(res.output.find("no checkpoint"), std::string::npos) << res.output;
  EXPECT_FALSE(fs::exists(tmp.path / "x"));
  EXPECT_FALSE(fs::exists(tmp.path / "y"));
}

TEST(SampleCli, ImagesAreStoredAsUint8) {
  TempDir tmp("sample_images");
  const auto w = (tmp.path / "run").string();
  const std::string model =
      " data.dataset=synthetic_images data.image_size=8 data.num_channels=3 data.centered=true "
      "model.name=ncsnpp model.nf=8 model.ch_mult=[1,2] model.num_res_blocks=1 "
      "model.attn_resolutions=[] ";
  auto r = run_scorch("train --workdir " + w + model +
                      "training.n_iters=2 training.snapshot_freq=2 training.snapshot_sampling=false "
                      "training.batch_size=4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_scorch("sample --json --no-progress --workdir " + w + " --num 6 --batch 4 --out " +
                 (tmp.path / "s").string() + " sampling.num_steps=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ShardedDataset d((tmp.path / "s").string());
  EXPECT_EQ(d.size(), 6);
  EXPECT_EQ(d.manifest().describe(), "8x8x3 uint8 images");
  EXPECT_TRUE(fs::exists(tmp.path / "s.png"));
}

}  // namespace
}  // namespace scorch::testing
