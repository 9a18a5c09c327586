// End-to-end tests of `scorch train`: exit codes and error messages,
// workdir contents, bitwise determinism, and stop/resume equality.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "testing/command.h"   // defines: run_scorch, run_command, mpirun_scorch
#include "testing/files.h"     // defines: read_file, write_bytes, random_bytes, entries
#include "testing/temp_dir.h"  // defines: TempDir

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

// A short toy run: 60 steps, checkpoints every 30, a small sample snapshot.
const std::string kShort =
    "training.n_iters=60 training.snapshot_freq=60 training.snapshot_freq_for_preemption=30 "
    "training.log_freq=10 training.snapshot_num_samples=256 sampling.num_steps=50 "
    "sampling.batch_size=128 training.batch_size=128 training.keep_checkpoints=5";

TEST(TrainCli, HelpListsConfigKeys) {
  auto r = run_scorch("train --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("training.batch_size"), std::string::npos);
  EXPECT_NE(r.output.find("--workdir"), std::string::npos);
}

TEST(TrainCli, UnknownKeyExitsTwoAndSuggests) {
  TempDir dir("cli_unknown");
  auto r = run_scorch("train --workdir " + dir.str() + " training.batch_sise=4");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("did you mean 'training.batch_size'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.path / "checkpoints")) << "nothing is written for a bad config";
}

TEST(TrainCli, BadValueAndMissingFileExitTwo) {
  TempDir dir("cli_bad");
  auto r = run_scorch("train --workdir " + dir.str() + " optim.lr=-1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("optim.lr"), std::string::npos) << r.output;
  // Beyond float32: refused naming the key, not an internal error when the
  // value becomes a tensor.
  r = run_scorch("train --workdir " + dir.str() + " optim.lr=1.0e+308");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("optim.lr"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path / "checkpoints"));
  r = run_scorch("train --config /nonexistent.yaml --workdir " + dir.str());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_scorch("frobnicate");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

// EDM preconditioning, its losses and the multistep samplers' options: each
// combination that cannot work exits 2 naming the key and what would be right.
TEST(TrainCli, PrecondLossAndSamplerOptionErrorsExitTwo) {
  TempDir dir("cli_precond");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"model.name=analytic model.precond=edm", "model.name mlp, ddpm, ncsnpp or adm"},
      {"training.loss=edm", "needs model.precond=vp, ve or edm"},
      {"model.precond=vp training.continuous=false", "needs training.continuous=true"},
      {"model.precond=edm model.scale_by_sigma=true", "set model.scale_by_sigma=false"},
      {"model.precond=edm training.loss=edm training.p_std=0", "training.p_std"},
      {"model.precond=unet", "model.precond"},
      {"sampling.method=unipc sampling.sde_variant=sde", "sampling.sde_variant=none"},
      {"sampling.method=pc sampling.order=3", "leave sampling.order at 2"},
  };
  for (const auto& [overrides, message] : cases) {
    auto r = run_scorch("train --workdir " + dir.str() + " " + overrides);
    EXPECT_EQ(r.exit_code, 2) << overrides << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << overrides << "\n" << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(dir.path / "checkpoints"));
  // A score_sde checkpoint holds an unpreconditioned network.
  const std::string cifar = std::string(SCORCH_SOURCE_DIR) + "/configs/vp/cifar10_ddpmpp_continuous.yaml";
  auto r = run_scorch("sample --score-sde-checkpoint " + cifar + " --config " + cifar +
                      " --num 1 --out " + (dir.path / "s").string() + " model.precond=vp");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("set model.precond=none"), std::string::npos) << r.output;
}

TEST(TrainCli, WorkdirLayoutAndJsonResult) {
  TempDir dir("cli_layout");
  auto r = run_scorch("train --json --workdir " + dir.str() + " " + kShort);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto result = nlohmann::json::parse(r.stdout_only);
  EXPECT_EQ(result["step"], 60);
  EXPECT_EQ(result["images_seen"], 60 * 128);
  EXPECT_TRUE(result["quality"].contains("swd"));
  EXPECT_TRUE(fs::exists(dir.path / "config.yaml"));
  EXPECT_TRUE(fs::exists(dir.path / "checkpoints" / "checkpoint_00000030.pt"));
  EXPECT_TRUE(fs::exists(dir.path / "checkpoints" / "checkpoint_00000060.pt"));
  EXPECT_TRUE(fs::exists(dir.path / "samples" / "iter_00000060" / "samples.png"));
  EXPECT_TRUE(fs::exists(dir.path / "eval" / "quality.json"));
  // log.jsonl: one line per 10 steps plus the snapshot quality line.
  std::istringstream log(read_file(dir.path / "log.jsonl"));
  std::string line;
  int steps = 0;
  while (std::getline(log, line)) {
    auto rec = nlohmann::json::parse(line);
    if (rec.contains("quality")) continue;
    ++steps;
    for (const char* key : {"loss", "loss_q1", "loss_q4", "grad_norm", "lr", "images_per_s"})
      EXPECT_TRUE(rec.contains(key)) << key << " missing in " << line;
    EXPECT_EQ(rec["step"], steps * 10);
  }
  EXPECT_EQ(steps, 6);
  // The saved config is the resolved one: running again reuses it and, the
  // run being complete, trains no further.
  r = run_scorch("train --json --workdir " + dir.str());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.stdout_only)["start_step"], 60);
}

TEST(TrainCli, SnapshotsDrawWithTheConfiguredSampler) {
  // The snapshot goes through the sampler dispatch of `scorch sample`: EDM's
  // Heun sampler evaluates the score 2N - 1 times for N steps, DDIM N times,
  // the PC sampler (Euler-Maruyama, no corrector) once per step.
  const std::string base = " training.n_iters=2 training.snapshot_freq=2 training.log_freq=1 "
                           "training.snapshot_num_samples=16 sampling.batch_size=16 "
                           "training.batch_size=16";
  const std::pair<std::string, std::string> cases[] = {
      {"sampling.method=edm sampling.num_steps=5", "sampling.method=edm, NFE 9)"},
      {"sampling.method=ddim sampling.num_steps=6", "sampling.method=ddim, NFE 6)"},
      {"sampling.method=pc sampling.num_steps=7", "sampling.method=pc, NFE 7)"}};
  for (const auto& [overrides, expected] : cases) {
    TempDir dir("cli_snapshot_sampler");
    auto r = run_scorch("train --workdir " + dir.str() + base + " " + overrides);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("snapshot at step 2: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("16 samples, " + expected), std::string::npos) << overrides << "\n"
                                                                         << r.output;
  }
}

TEST(TrainCli, SameSeedGivesBitwiseIdenticalCheckpoints) {
  TempDir a("cli_det_a"), b("cli_det_b");
  ASSERT_EQ(run_scorch("train --workdir " + a.str() + " " + kShort).exit_code, 0);
  ASSERT_EQ(run_scorch("train --workdir " + b.str() + " " + kShort).exit_code, 0);
  const auto ca = read_file(a.path / "checkpoints" / "checkpoint_00000060.pt");
  const auto cb = read_file(b.path / "checkpoints" / "checkpoint_00000060.pt");
  ASSERT_GT(ca.size(), 1000u);
  EXPECT_TRUE(ca == cb) << "checkpoints of two identical runs differ";
  // A different seed gives a different model.
  TempDir c("cli_det_c");
  ASSERT_EQ(run_scorch("train --workdir " + c.str() + " " + kShort + " seed=43").exit_code, 0);
  EXPECT_FALSE(ca == read_file(c.path / "checkpoints" / "checkpoint_00000060.pt"));
}

TEST(TrainCli, StopAndResumeEqualsStraightRun) {
  TempDir straight("cli_straight"), resumed("cli_resumed");
  ASSERT_EQ(run_scorch("train --workdir " + straight.str() + " " + kShort).exit_code, 0);
  // Stop at step 30 (n_iters=30), then resume the same workdir to 60.
  auto first =
      run_scorch("train --workdir " + resumed.str() + " " + kShort + " training.n_iters=30");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto second = run_scorch("train --json --workdir " + resumed.str() + " " + kShort);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(nlohmann::json::parse(second.stdout_only)["start_step"], 30);
  EXPECT_TRUE(read_file(straight.path / "checkpoints" / "checkpoint_00000060.pt") ==
              read_file(resumed.path / "checkpoints" / "checkpoint_00000060.pt"))
      << "a resumed run must end with the same state as a straight one";
}

}  // namespace
}  // namespace scorch::testing

namespace scorch::testing {
namespace {

TEST(TrainCli, UnreadableCheckpointsAreNotBuried) {
  TempDir dir("cli_corrupt");
  ASSERT_EQ(run_scorch("train --workdir " + dir.str() + " " + kShort).exit_code, 0);
  // Truncate every checkpoint: the run must stop with exit 2, not start over.
  for (const auto& e : fs::directory_iterator(dir.path / "checkpoints"))
    fs::resize_file(e.path(), fs::file_size(e.path()) / 2);
  auto r = run_scorch("train --workdir " + dir.str() + " training.n_iters=90");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no checkpoint in"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("checkpoint_00000060.pt"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.path / "checkpoints" / "checkpoint_00000090.pt"));
}

TEST(TrainCli, TruncatedNewestCheckpointFallsBack) {
  TempDir dir("cli_fallback");
  ASSERT_EQ(run_scorch("train --workdir " + dir.str() + " " + kShort).exit_code, 0);
  const auto newest = dir.path / "checkpoints" / "checkpoint_00000060.pt";
  fs::resize_file(newest, fs::file_size(newest) / 2);
  auto r = run_scorch("train --json --workdir " + dir.str());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.stdout_only)["start_step"], 30);
  EXPECT_NE(r.output.find("checkpoint_00000060.pt"), std::string::npos) << "warned: " << r.output;
}

}  // namespace
}  // namespace scorch::testing
