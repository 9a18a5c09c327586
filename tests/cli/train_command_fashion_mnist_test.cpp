// End to end on real data: convert a slice of Fashion-MNIST (Debian's
// dataset-fashion-mnist), verify and inspect it, train the fashion_mnist
// configs on it, stop and resume; a damaged dataset stops training with exit
// 2 and a message naming the shard, leaving the saved run untouched.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "testing/command.h"       // defines: run_scorch, run_command, mpirun_scorch
#include "testing/dependencies.h"  // defines: SCORCH_REQUIRE_OR_SKIP, kFashionMnistDir
#include "testing/files.h"         // defines: read_file, write_bytes, random_bytes, entries
#include "testing/temp_dir.h"      // defines: TempDir

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

// A tiny NCSN++ so a step takes a fraction of a second on the CPU.
const std::string kTiny =
    "model.nf=8 model.ch_mult=[1,2] model.num_res_blocks=1 model.attn_resolutions=[14] "
    "training.batch_size=8 training.log_freq=1 training.snapshot_freq=2 "
    "training.snapshot_freq_for_preemption=2 training.snapshot_sampling=false "
    "data.loader_threads=2";

std::vector<nlohmann::json> log_lines(const fs::path& workdir) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(workdir / "log.jsonl"));
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

class FashionMnist : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kFashionMnistDir)) return;  // SetUp skips or fails each test
    dir_ = new TempDir("fashion");
    auto r = run_scorch("data convert --from idx --input " + kFashionMnistDir +
                        " --split test --limit 300 --shard-size 128 --out " + data());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override {
    SCORCH_REQUIRE_OR_SKIP(fs::exists(kFashionMnistDir),
                           kFashionMnistDir + " (Debian package dataset-fashion-mnist)");
  }
  static std::string data() { return (dir_->path / "fmnist").string(); }
  static std::string config(const std::string& name) {
    return std::string(SCORCH_SOURCE_DIR) + "/configs/fashion_mnist/" + name + ".yaml";
  }
  static TempDir* dir_;
};
TempDir* FashionMnist::dir_ = nullptr;

TEST_F(FashionMnist, VerifyAndInspect) {
  auto r = run_scorch("data verify " + data());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("300 28x28x1 uint8 images in 3 shard(s)"), std::string::npos) << r.output;
  TempDir out("inspect");
  r = run_scorch("data inspect --json --grid " + (out.path / "grid.png").string() + " " + data());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.stdout_only);
  EXPECT_EQ(j["num_samples"], 300);
  EXPECT_EQ(j["num_classes"], 10);
  int64_t total = 0;
  for (auto c : j["class_counts"]) {
    total += c.get<int64_t>();
    EXPECT_GT(c.get<int64_t>(), 10);
  }
  EXPECT_EQ(total, 300);
  // Fashion-MNIST pixels average about 0.286 (0.2860 over the training set).
  EXPECT_NEAR(j["mean"][0].get<double>(), 0.286, 0.03);
  EXPECT_GT(fs::file_size(out.path / "grid.png"), 1000u);
}

TEST_F(FashionMnist, TrainStopResumeContinuesTheStream) {
  TempDir a("fm_resumed"), b("fm_straight");
  const std::string common = " data.path=" + data() + " " + kTiny;
  auto r = run_scorch("train --config " + config("vp") + " --workdir " + a.str() + common +
                      " training.n_iters=4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("checksums verified"), std::string::npos) << r.output;
  r = run_scorch("train --config " + config("vp") + " --workdir " + a.str() + common +
                 " training.n_iters=7");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  r = run_scorch("train --config " + config("vp") + " --workdir " + b.str() + common +
                 " training.n_iters=7");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto la = log_lines(a.path), lb = log_lines(b.path);
  ASSERT_EQ(la.size(), 7u);
  ASSERT_EQ(lb.size(), 7u);
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(la[i]["step"], lb[i]["step"]);
    // Same data, same noise: the resumed run's losses are the straight run's.
    EXPECT_NEAR(la[i]["loss"].get<double>(), lb[i]["loss"].get<double>(),
                1e-5 * std::abs(lb[i]["loss"].get<double>()))
        << "step " << lb[i]["step"];
    EXPECT_TRUE(la[i].contains("data_wait_s"));
  }
  EXPECT_EQ(la.back()["images_seen"], 56);
}

TEST_F(FashionMnist, EverySdeTrains) {
  for (const std::string sde : {"ve", "subvp"}) {
    TempDir w("fm_" + sde);
    auto r = run_scorch("train --json --config " + config(sde) + " --workdir " + w.str() +
                        " data.path=" + data() + " " + kTiny + " training.n_iters=2");
    ASSERT_EQ(r.exit_code, 0) << sde << ": " << r.output;
    auto j = nlohmann::json::parse(r.stdout_only);
    EXPECT_EQ(j["step"], 2);
    EXPECT_TRUE(std::isfinite(j["loss"].get<double>()));
  }
}

TEST_F(FashionMnist, DamagedDatasetStopsTrainingAndKeepsTheRun) {
  TempDir w("fm_damaged"), copy("fm_copy");
  const auto damaged = (copy.path / "ds").string();
  fs::copy(data(), damaged);
  const std::string common = " data.path=" + damaged + " " + kTiny;
  auto r = run_scorch("train --config " + config("vp") + " --workdir " + w.str() + common +
                      " training.n_iters=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto checkpoint = w.path / "checkpoints" / "checkpoint_00000002.pt";
  const auto saved = read_file(checkpoint);
  fs::resize_file(fs::path(damaged) / "shard-00001.h5", 5000);
  r = run_scorch("train --config " + config("vp") + " --workdir " + w.str() + common +
                 " training.n_iters=4");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("shard-00001.h5: truncated"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(checkpoint), saved);
  EXPECT_FALSE(fs::exists(w.path / "checkpoints" / "checkpoint_00000004.pt"));
  r = run_scorch("data verify " + damaged);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("shard-00001.h5: truncated"), std::string::npos) << r.output;
  // Wrong image size in the config: named with the fix.
  r = run_scorch("train --config " + config("vp") + " --workdir " + w.str() + "x data.path=" +
                 data() + " " + kTiny + " data.image_size=32");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("set data.image_size=28"), std::string::npos) << r.output;
  fs::remove_all(w.str() + "x");
}

}  // namespace
}  // namespace scorch::testing
