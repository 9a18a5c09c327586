// End-to-end tests of EDM2's power-function EMA in `scorch train` and of
// `scorch phema`: snapshots under workdir/phema/, reconstructions that equal
// the directly tracked profiles (exactly for a stored std, closely for one
// between them), checkpoints `scorch sample` reads, resume continuing the
// profiles exactly, training unchanged by the profiles, --eval's FID table,
// and the errors (exit 2, naming the key or flag).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/shard_writer.h"
#include "testing/command.h"   // defines: run_scorch, run_command, mpirun_scorch
#include "testing/detector.h"  // defines: save_detector
#include "testing/temp_dir.h"  // defines: TempDir
#include "train/checkpoint.h"
#include "train/phema.h"

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

// A toy run of 60 steps of 128 images with three profiles, snapshots every
// 640 images (5 steps): 12 snapshot times.
const std::string kToy =
    "training.n_iters=60 training.snapshot_freq=60 training.snapshot_freq_for_preemption=30 "
    "training.log_freq=10 training.snapshot_sampling=false training.batch_size=128 "
    "training.keep_checkpoints=5 sampling.num_steps=20 sampling.batch_size=64";
const std::string kPhema = " model.phema_std=[0.05,0.1,0.08] training.phema_snapshot_kimg=0.64";

// The trained workdir, shared by the tests (trained once).
const TempDir& trained() {
  static TempDir dir("phema_trained");
  static const bool done = [] {
    auto r = run_scorch("train --workdir " + dir.str() + " " + kToy + kPhema);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return true;
  }();
  (void)done;
  return dir;
}

torch::Tensor flat(const std::map<std::string, torch::Tensor>& weights) {
  std::vector<torch::Tensor> parts;
  for (const auto& [name, t] : weights) parts.push_back(t.to(torch::kDouble).flatten());
  return torch::cat(parts);
}

// The trainable parameters of `model` (the names `ema` has).
std::map<std::string, torch::Tensor> trainable(const std::map<std::string, torch::Tensor>& model,
                                               const std::map<std::string, torch::Tensor>& ema) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : ema) out[name] = model.at(name);
  return out;
}

TEST(PhemaCli, ReconstructsTrackedProfilesIntoCheckpointsThatSample) {
  const auto& work = trained();
  const auto final_ckpt =
      load_checkpoint((work.path / "checkpoints" / "checkpoint_00000060.pt").string());
  const auto files = list_phema_snapshots((work.path / "phema").string());
  ASSERT_EQ(files.size(), 36u);
  EXPECT_EQ(files.back().nimg, 60 * 128);
  // The newest snapshot holds the profile the final checkpoint holds.
  const auto newest = load_checkpoint(files.back().path);
  EXPECT_TRUE(torch::equal(flat(newest.ema.at("phema_0.1")), flat(final_ckpt.ema.at("phema_0.1"))));

  TempDir out("phema_out");
  auto r = run_scorch("phema --workdir " + work.str() +
                      " --std 0.08,0.05 --in-std 0.05,0.1 --out " + out.str() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(r.stdout_only);
  ASSERT_EQ(report["results"].size(), 2u);
  EXPECT_EQ(report["results"][0]["snapshots"], 24);

  // 0.05 is stored: the reconstruction is the tracked profile, to float rounding.
  const auto tracked005 = flat(final_ckpt.ema.at("phema_0.05"));
  const auto r005 = load_checkpoint((out.path / "phema-0.05.pt").string());
  EXPECT_LT((flat(trainable(r005.model, final_ckpt.ema.at("phema_0.05"))) - tracked005)
                .abs()
                .max()
                .item<double>(),
            1e-6);
  // 0.08 from the 0.05 and 0.1 profiles only, against the 0.08 the run tracked:
  // far closer than either stored profile is.
  const auto tracked008 = flat(final_ckpt.ema.at("phema_0.08"));
  const auto r008 = load_checkpoint((out.path / "phema-0.08.pt").string());
  const double error = (flat(r008.ema.at("phema_0.08")) - tracked008).norm().item<double>();
  const double spread =
      std::min((tracked005 - tracked008).norm().item<double>(),
               (flat(final_ckpt.ema.at("phema_0.1")) - tracked008).norm().item<double>());
  EXPECT_LT(error, 0.02 * spread) << "error " << error << " spread " << spread;
  ASSERT_EQ(r008.ema.size(), 2u);  // the config's ema_rate and phema_0.08: both the reconstruction
  for (const auto& [name, weights] : r008.ema)
    EXPECT_TRUE(torch::equal(flat(weights), flat(r008.ema.at("phema_0.08")))) << name;

  // `scorch sample` reads the output, by default and by the profile's EMA name.
  for (const std::string weights : {"ema", "phema_0.08"}) {
    TempDir samples("phema_samples");
    r = run_scorch("sample --checkpoint " + (out.path / "phema-0.08.pt").string() +
                   " --num 16 --overwrite --out " + (samples.path / "s").string() + " --weights " +
                   weights + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  // The plain table.
  r = run_scorch("phema --workdir " + work.str() + " --std 0.1 --out " + out.str());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.stdout_only.find("sigma_rel"), std::string::npos) << r.stdout_only;
  EXPECT_NE(r.stdout_only.find("phema-0.1.pt"), std::string::npos) << r.stdout_only;
}

TEST(PhemaCli, ResumedRunContinuesTheProfilesExactly) {
  const auto& straight = trained();
  TempDir resumed("phema_resumed");
  auto r =
      run_scorch("train --workdir " + resumed.str() + " " + kToy + kPhema + " training.n_iters=32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_scorch("train --workdir " + resumed.str() + " " + kToy + kPhema);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto a = list_phema_snapshots((straight.path / "phema").string());
  const auto b = list_phema_snapshots((resumed.path / "phema").string());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(fs::path(a[i].path).filename().string(), fs::path(b[i].path).filename().string());
    const auto ca = load_checkpoint(a[i].path), cb = load_checkpoint(b[i].path);
    EXPECT_EQ(ca.step, cb.step);
    ASSERT_EQ(ca.model.size(), cb.model.size());
    for (const auto& [name, t] : ca.model)
      EXPECT_TRUE(torch::equal(t, cb.model.at(name))) << a[i].path << " " << name;
  }
  // The final checkpoints, profiles included, are bitwise equal too.
  const auto ca =
      load_checkpoint((straight.path / "checkpoints" / "checkpoint_00000060.pt").string());
  const auto cb =
      load_checkpoint((resumed.path / "checkpoints" / "checkpoint_00000060.pt").string());
  for (const auto& [ema, weights] : ca.ema)
    EXPECT_TRUE(torch::equal(flat(weights), flat(cb.ema.at(ema)))) << ema;
}

// Parameters are replicated, so every rank updates the same profiles; rank 0
// alone writes them, and they equal one rank's up to float rounding.
TEST(PhemaCli, TwoRanksStoreTheProfilesOfOne) {
  const auto& one = trained();
  TempDir two("phema_two_ranks");
  auto r = mpirun_scorch(2, "train --workdir " + two.str() + " " + kToy + kPhema);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto a = list_phema_snapshots((one.path / "phema").string());
  const auto b = list_phema_snapshots((two.path / "phema").string());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const auto ca = load_checkpoint(a[i].path), cb = load_checkpoint(b[i].path);
    const auto name = Ema::phema_name(a[i].sigma);
    EXPECT_LT((flat(ca.ema.at(name)) - flat(cb.ema.at(name))).abs().max().item<double>(), 1e-4)
        << b[i].path;
  }
  for (const auto& entry : fs::directory_iterator(two.path / "phema"))
    EXPECT_EQ(entry.path().extension().string(), ".pt") << entry.path();
}

TEST(PhemaCli, ProfilesDoNotChangeTraining) {
  const auto& with = trained();
  TempDir without("phema_without");
  auto r = run_scorch("train --workdir " + without.str() + " " + kToy);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(without.path / "phema"));
  const auto a = load_checkpoint((with.path / "checkpoints" / "checkpoint_00000060.pt").string());
  const auto b =
      load_checkpoint((without.path / "checkpoints" / "checkpoint_00000060.pt").string());
  EXPECT_TRUE(torch::equal(flat(a.model), flat(b.model)));
  EXPECT_TRUE(torch::equal(flat(a.optimizer), flat(b.optimizer)));
  ASSERT_EQ(b.ema.size(), 1u);
  const std::string rate = b.ema.begin()->first;  // model.ema_rate's EMA
  EXPECT_TRUE(torch::equal(flat(a.ema.at(rate)), flat(b.ema.at(rate))));
  EXPECT_EQ(a.ema.size(), 4u);
}

void expect_exit2(const std::string& args, const std::string& names) {
  auto r = run_scorch(args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(names), std::string::npos) << args << "\n" << r.output;
}

TEST(PhemaCli, ErrorsNameTheKeyOrFlag) {
  const auto& work = trained();
  TempDir dir("phema_errors");
  const std::string out = " --out " + (dir.path / "out").string();
  // No snapshots: a workdir trained without them, and an empty phema/.
  TempDir plain("phema_plain");
  ASSERT_EQ(
      run_scorch("train --workdir " + plain.str() + " " + kToy + " training.n_iters=2").exit_code,
      0);
  expect_exit2("phema --workdir " + plain.str() + " --std 0.1" + out,
               "training.phema_snapshot_kimg");
  fs::create_directories(plain.path / "phema");
  expect_exit2("phema --workdir " + plain.str() + " --std 0.1" + out,
               "no power-function EMA snapshots");
  expect_exit2("phema --workdir " + (dir.path / "nowhere").string() + " --std 0.1" + out,
               "--workdir");
  // Stds outside (0, sqrt(1/12)], and one the profiles cannot express.
  expect_exit2("phema --workdir " + work.str() + " --std 0.3" + out, "--std");
  expect_exit2("phema --workdir " + work.str() + " --std 0" + out, "--std");
  expect_exit2("phema --workdir " + work.str() + " --std 0.01" + out, "--max-error");
  expect_exit2("phema --workdir " + work.str() + " --std 0.1 --in-std 0.2" + out, "--in-std");
  expect_exit2("phema --workdir " + work.str() + out, "--std");
  // Training keys.
  const std::string train = "train --workdir " + dir.str() + " " + kToy + " ";
  expect_exit2(train + "training.phema_snapshot_kimg=1", "model.phema_std");
  expect_exit2(train + "model.phema_std=[0.3]", "model.phema_std");
  expect_exit2(train + "model.phema_std=[0]", "model.phema_std");
  expect_exit2(train + "model.phema_std=[0.05,0.05]", "model.phema_std");
  // A profile added on resume would not be a power function.
  TempDir grown("phema_grown");
  ASSERT_EQ(
      run_scorch("train --workdir " + grown.str() + " " + kToy + kPhema + " training.n_iters=5")
          .exit_code,
      0);
  expect_exit2("train --workdir " + grown.str() + " model.phema_std=[0.05,0.1,0.08,0.12]",
               "phema_0.12");
}

void write_random_dataset(const fs::path& dir, int64_t n, int64_t side, int64_t seed) {
  torch::manual_seed(seed);
  ShardWriterOptions o;
  o.sample_shape = {side, side, 3};
  ShardWriter w(dir.string(), o);
  w.add_batch(torch::randint(0, 256, {n, side, side, 3}).to(torch::kByte));
  w.finish();
}

TEST(PhemaCli, EvalPrintsFidByStdAsScorchEvalScoresIt) {
  TempDir dir("phema_eval");
  const auto detector = dir.path / "detector.pt", stats = dir.path / "ref.npz";
  save_detector(detector.string());
  write_random_dataset(dir.path / "ref", 32, 8, 5);
  auto r = run_scorch("stats --data " + (dir.path / "ref").string() + " --out " + stats.string() +
                      " --extractor " + detector.string() + " --features");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto work = dir.path / "work";
  r = run_scorch(
      "train --config " + std::string(SCORCH_SOURCE_DIR) +
      "/configs/vp/cifar10_ddpmpp_continuous.yaml --workdir " + work.string() +
      " data.dataset=synthetic_images data.image_size=8 model.nf=16 model.ch_mult=[1,2] "
      "model.num_res_blocks=1 model.attn_resolutions=[4] model.num_scales=50 "
      "training.batch_size=4 training.n_iters=4 training.snapshot_freq=4 "
      "training.snapshot_sampling=false sampling.batch_size=4 sampling.num_steps=5 "
      "sampling.method=ode model.phema_std=[0.05,0.1] training.phema_snapshot_kimg=0.008");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string flags =
      " --ref " + stats.string() + " --extractor " + detector.string() + " --num 6";
  const auto out = dir.path / "out";
  r = run_scorch("phema --workdir " + work.string() + " --std 0.07,0.1 --out " + out.string() +
                 " --eval --json" + flags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(r.stdout_only);
  ASSERT_EQ(report["results"].size(), 2u);
  const double fid = report["results"][1]["fid"].get<double>();
  EXPECT_TRUE(std::isfinite(fid));
  r = run_scorch("eval --checkpoint " + (out / "phema-0.1.pt").string() + flags + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(nlohmann::json::parse(r.stdout_only)["fid"].get<double>(), fid, 1e-9 * fid);
  r = run_scorch("phema --workdir " + work.string() + " --std 0.07,0.1 --out " + out.string() +
                 " --eval" + flags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.stdout_only.find("FID"), std::string::npos) << r.stdout_only;
}

}  // namespace
}  // namespace scorch::testing
