// scorch likelihood, scorch ood and conditional `scorch sample` end to end
// with analytic models, against closed forms: bits/dim of Gaussian data,
// AUROC of shifted data, and conditions that hold exactly.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/shard_writer.h"
#include "data/sharded_dataset.h"
#include "testing/command.h"   // defines: run_scorch, run_command, mpirun_scorch
#include "testing/files.h"     // defines: read_file, write_bytes, random_bytes, entries
#include "testing/temp_dir.h"  // defines: TempDir

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;
const double kPi = std::acos(-1.0);

const std::string kToy = std::string(SCORCH_SOURCE_DIR) + "/configs/toy/eight_gaussians_vp.yaml";

void write_vectors(const std::string& dir, const torch::Tensor& x) {
  ShardWriterOptions o;
  o.kind = SampleKind::kVectors;
  o.sample_shape = {x.size(1)};
  ShardWriter w(dir, o);
  w.add_batch(x.to(torch::kFloat).contiguous());
  w.finish();
}

void write_images(const std::string& dir, const torch::Tensor& x) {  // uint8 [n, H, W, C]
  ShardWriterOptions o;
  o.sample_shape = {x.size(1), x.size(2), x.size(3)};
  ShardWriter w(dir, o);
  w.add_batch(x.contiguous());
  w.finish();
}

TEST(LikelihoodCli, GaussianBitsPerDimMatchTheDensity) {
  TempDir tmp("lik_cli");
  torch::manual_seed(0);
  auto x = 0.5 * torch::randn({300, 2}, torch::kDouble) + torch::tensor({1.0, -1.0}, torch::kDouble);
  write_vectors((tmp.path / "d").string(), x);
  auto r = run_scorch("likelihood --json --config " + kToy + " --data " + (tmp.path / "d").string() +
                      " --divergence exact --batch 150 model.name=analytic "
                      "model.analytic_means=[1,-1] model.analytic_std=0.5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.stdout_only);
  // Continuous 2-D data: bpd = -log N(x; mu, 0.25 I) / (2 ln 2), no offset.
  auto xf = x.to(torch::kFloat).to(torch::kDouble);  // as stored
  auto r2 = (xf - torch::tensor({1.0, -1.0}, torch::kDouble)).pow(2).sum(1);
  const double expected =
      ((r2 / (2 * 0.25) + std::log(2 * kPi * 0.25)) / (2 * std::log(2.0))).mean().item<double>();
  EXPECT_NEAR(j["bpd"].get<double>(), expected, 0.01);
  EXPECT_EQ(j["offset"], 0.0);
  EXPECT_GT(j["nfe_per_solve"].get<double>(), 10);
}

TEST(OodCli, ShiftedDataIsSeparated) {
  TempDir tmp("ood_cli");
  torch::manual_seed(1);
  write_vectors((tmp.path / "in").string(), 0.5 * torch::randn({300, 2}));
  write_vectors((tmp.path / "out").string(), 0.5 * torch::randn({300, 2}) + 2.0);
  for (const std::string score : {"loss", "bpd"}) {
    auto r = run_scorch("ood --json --config " + kToy + " --in " + (tmp.path / "in").string() +
                        " --ood " + (tmp.path / "out").string() + " --score " + score +
                        " --scores " + (tmp.path / (score + ".json")).string() +
                        " model.name=analytic model.analytic_std=0.5");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto j = nlohmann::json::parse(r.stdout_only);
    EXPECT_GT(j["auroc"].get<double>(), 0.95) << score;
    EXPECT_GT(j["ood_mean"].get<double>(), j["in_mean"].get<double>());
    auto scores = nlohmann::json::parse(read_file(tmp.path / (score + ".json")));
    EXPECT_EQ(scores["in"].size(), 300u);
  }
  // The same data on both sides: chance.
  auto r = run_scorch("ood --json --config " + kToy + " --in " + (tmp.path / "in").string() +
                      " --ood " + (tmp.path / "in").string() + " model.name=analytic");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(nlohmann::json::parse(r.stdout_only)["auroc"].get<double>(), 0.5, 1e-9);
}

TEST(InterpolateCli, EndsOfEachPathAreThePair) {
  TempDir tmp("interp_cli");
  auto pts = torch::tensor({-2.0f, 0.1f, 2.0f, -0.1f, 0.3f, -2.0f, -0.2f, 2.0f}).view({4, 2});
  write_vectors((tmp.path / "pts").string(), pts);
  auto r = run_scorch("sample --no-progress --config " + kToy + " --interpolate " +
                      (tmp.path / "pts").string() + " --steps 5 --num 10 --out " +
                      (tmp.path / "frames").string() +
                      " model.name=analytic model.analytic_means=[-2,0,2,0,0,-2,0,2] "
                      "model.analytic_std=0.3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ShardedDataset d((tmp.path / "frames").string());
  auto f = d.read_range(0, 10);
  // Encode then decode returns each end (1e-3 relative); the path moves in between.
  for (int p = 0; p < 2; ++p) {
    EXPECT_TRUE(torch::allclose(f[5 * p], pts[2 * p], 1e-3, 1e-3)) << f[5 * p];
    EXPECT_TRUE(torch::allclose(f[5 * p + 4], pts[2 * p + 1], 1e-3, 1e-3)) << f[5 * p + 4];
    EXPECT_GT((f[5 * p + 2] - f[5 * p]).norm().item<float>(), 0.5f);
    EXPECT_GT((f[5 * p + 2] - f[5 * p + 4]).norm().item<float>(), 0.5f);
  }
  r = run_scorch("sample --no-progress --config " + kToy + " --interpolate " +
                 (tmp.path / "pts").string() + " --steps 5 --num 7 --out " +
                 (tmp.path / "bad").string() + " model.name=analytic");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("multiple of --steps"), std::string::npos) << r.output;
}

// An analytic image model: 8x8x3 images, N(0.5, 0.2^2) per pixel in [0, 1].
const std::string kImageModel =
    " data.dataset=synthetic_images data.image_size=8 data.num_channels=3 data.centered=false "
    "model.name=analytic model.analytic_std=0.2 sampling.num_steps=200 ";

torch::Tensor read_images(const std::string& dir) {
  ShardedDataset d(dir);
  return d.read_range(0, d.size());
}

TEST(ConditionalSampleCli, InpaintColorizeSuperResolve) {
  TempDir tmp("cond_cli");
  torch::manual_seed(2);
  // Mid-range values, so the free directions rarely clip at 0 or 255.
  auto images = torch::randint(96, 160, {6, 8, 8, 3}, torch::kLong).to(torch::kUInt8);
  write_images((tmp.path / "full").string(), images);
  auto low = torch::randint(96, 160, {6, 4, 4, 3}, torch::kLong).to(torch::kUInt8);
  write_images((tmp.path / "low").string(), low);
  const std::string base = "sample --no-progress --config " + kToy + kImageModel + " --num 6 ";

  auto r = run_scorch(base + "--inpaint " + (tmp.path / "full").string() + " --mask left --out " +
                      (tmp.path / "inpainted").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto out = read_images((tmp.path / "inpainted").string());
  EXPECT_TRUE(torch::equal(out.narrow(2, 0, 4), images.narrow(2, 0, 4))) << "known half kept";
  EXPECT_FALSE(torch::equal(out.narrow(2, 4, 4), images.narrow(2, 4, 4)));

  r = run_scorch(base + "--colorize " + (tmp.path / "full").string() + " --out " +
                 (tmp.path / "color").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  out = read_images((tmp.path / "color").string()).to(torch::kDouble);
  auto gray_in = images.to(torch::kDouble).mean(3), gray_out = out.mean(3);
  // Storage truncates each channel (up to 1 level); clipping may move a few more.
  EXPECT_GT(((gray_out - gray_in).abs() <= 1.0).to(torch::kDouble).mean().item<double>(), 0.95);

  r = run_scorch(base + "--super-resolve " + (tmp.path / "low").string() + " --factor 2 --out " +
                 (tmp.path / "sr").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  out = read_images((tmp.path / "sr").string()).to(torch::kDouble);
  auto pooled = torch::avg_pool2d(out.permute({0, 3, 1, 2}), 2).permute({0, 2, 3, 1});
  EXPECT_GT(((pooled - low.to(torch::kDouble)).abs() <= 1.0).to(torch::kDouble).mean().item<double>(),
            0.95);

  // Conditions that cannot work are named.
  r = run_scorch(base + "--class 1 --out " + (tmp.path / "x").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("class-conditional"), std::string::npos) << r.output;
  r = run_scorch(base + "--super-resolve " + (tmp.path / "full").string() + " --out " +
                 (tmp.path / "y").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("4x4 images"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace scorch::testing
