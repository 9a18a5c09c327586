// `scorch eval` of a model end to end: samples drawn with per-sample noise
// are the same images on 1 and 2 ranks and with any batch size, so the
// metrics agree; the reported FID is that of the written samples; FID during
// training (eval.freq) equals `scorch eval --workdir` of the same checkpoint;
// and a classifier trained by `scorch classifier` on Fashion-MNIST serves as
// the extractor. Bad inputs are errors naming the flag or key.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/shard_writer.h"
#include "data/sharded_dataset.h"
#include "testing/command.h"       // defines: run_scorch, run_command, mpirun_scorch
#include "testing/dependencies.h"  // defines: SCORCH_REQUIRE_OR_SKIP, kFashionMnistDir
#include "testing/detector.h"      // defines: save_detector, features_of
#include "testing/files.h"         // defines: read_file, write_bytes, random_bytes, entries
#include "testing/temp_dir.h"      // defines: TempDir

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

const std::string kSource = SCORCH_SOURCE_DIR;
// score_sde's DDPM at 16x16 (tests/nn/import_score_sde_test.cpp's "ddpm" case),
// sampled with 4 stochastic DDIM steps (eta = 1: fresh noise at every step).
const std::string kImported =
    "--score-sde-checkpoint " + kSource + "/tests/nn/data/score_sde/ddpm_checkpoint.pth --config " +
    kSource + "/configs/vp/cifar10_ddpm.yaml data.image_size=16 model.nf=32 model.ch_mult=[1,1] "
    "model.num_res_blocks=0 model.attn_resolutions=[16,8] sampling.method=ddim "
    "sampling.num_steps=4 sampling.ddim_eta=1";

void write_random_dataset(const fs::path& dir, int64_t n, int64_t side, int64_t seed) {
  torch::manual_seed(seed);
  ShardWriterOptions o;
  o.sample_shape = {side, side, 3};
  ShardWriter w(dir.string(), o);
  w.add_batch(torch::randint(0, 256, {n, side, side, 3}).to(torch::kByte));
  w.finish();
}

std::vector<nlohmann::json> log_lines(const fs::path& workdir) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(workdir / "log.jsonl"));
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

struct Reference {
  TempDir dir{"eval_model"};
  fs::path detector = dir.path / "detector.pt", stats = dir.path / "ref.npz";
  explicit Reference(int64_t side) {
    save_detector(detector.string());
    write_random_dataset(dir.path / "ref", 64, side, 5);
    auto r = run_scorch("stats --data " + (dir.path / "ref").string() + " --out " + stats.string() +
                        " --extractor " + detector.string() + " --features");
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  std::string flags() const { return " --ref " + stats.string() + " --extractor " + detector.string(); }
};

TEST(EvalModel, SamplesAndMetricsAreTheSameOnAnyNumberOfRanksAndBatchSizes) {
  Reference ref(16);
  const auto one = ref.dir.path / "one", two = ref.dir.path / "two", other = ref.dir.path / "other";
  const std::string common = "eval " + kImported + ref.flags() + " --num 23 --json";
  auto r = run_scorch(common + " --batch 5 --out " + one.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto a = nlohmann::json::parse(r.stdout_only);
  r = mpirun_scorch(2, common + " --batch 5 --out " + two.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto b = nlohmann::json::parse(r.stdout_only);
  const auto gloo = ref.dir.path / "gloo";
  r = mpirun_scorch(2, common + " --batch 5 --out " + gloo.string() + " dist.backend=gloo");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.stdout_only)["fid"], b["fid"]);
  r = run_scorch(common + " --batch 8 --out " + other.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto c = nlohmann::json::parse(r.stdout_only);

  const auto images = ShardedDataset(one.string()).read_range(0, 23);
  EXPECT_TRUE(torch::equal(images, ShardedDataset(two.string()).read_range(0, 23)));
  EXPECT_TRUE(torch::equal(images, ShardedDataset(gloo.string()).read_range(0, 23)));
  EXPECT_TRUE(torch::equal(images, ShardedDataset(other.string()).read_range(0, 23)));
  EXPECT_FALSE(torch::equal(images[0], images[1])) << "each sample draws its own noise";

  EXPECT_EQ(a["num_samples"], 23);
  EXPECT_EQ(b["world_size"], 2);
  EXPECT_EQ(a["nfe"], 4);
  for (const char* key : {"fid", "inception_score", "kid", "precision", "recall"}) {
    ASSERT_TRUE(a[key].is_number()) << key << ": " << a.dump();
    const double x = a[key].get<double>();
    EXPECT_NEAR(b[key].get<double>(), x, 1e-9 * std::max(1.0, std::abs(x))) << key;
    EXPECT_NEAR(c[key].get<double>(), x, 1e-9 * std::max(1.0, std::abs(x))) << key;
  }
  EXPECT_GT(a["fid"].get<double>(), 1.0);  // DDPM samples are not uniform noise

  // The FID of the written samples is the reported one.
  r = run_scorch("eval --samples " + one.string() + ref.flags() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto d = nlohmann::json::parse(r.stdout_only);
  EXPECT_NEAR(d["fid"].get<double>(), a["fid"].get<double>(), 1e-9 * a["fid"].get<double>());
  EXPECT_NEAR(d["inception_score"].get<double>(), a["inception_score"].get<double>(), 1e-12);
}

TEST(EvalModel, FidDuringTrainingEqualsEvalOfTheCheckpoint) {
  Reference ref(8);
  TempDir work("eval_train");
  const std::string tiny =
      " data.dataset=synthetic_images data.image_size=8 model.nf=16 model.ch_mult=[1,2] "
      "model.num_res_blocks=1 model.attn_resolutions=[4] model.num_scales=50 "
      "training.batch_size=4 training.n_iters=4 training.log_freq=2 training.snapshot_freq=4 "
      "training.snapshot_sampling=false sampling.batch_size=4 sampling.num_steps=5 "
      "sampling.method=ode eval.freq=2 eval.freq_num_samples=6 eval.reference=" +
      ref.stats.string() + " eval.feature_extractor=" + ref.detector.string();
  auto r = run_scorch("train --config " + kSource + "/configs/vp/cifar10_ddpmpp_continuous.yaml "
                      "--workdir " + work.str() + tiny);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::map<int64_t, nlohmann::json> evals;
  for (const auto& line : log_lines(work.path))
    if (line.contains("eval")) evals[line["step"].get<int64_t>()] = line["eval"];
  ASSERT_EQ(evals.size(), 2u) << read_file(work.path / "log.jsonl");
  ASSERT_TRUE(evals.count(2) && evals.count(4));
  EXPECT_TRUE(fs::exists(work.path / "eval" / "eval_00000004.json"));
  EXPECT_EQ(evals[4]["num_samples"], 6);
  EXPECT_TRUE(evals[4]["kid"].is_number());

  // The same EMA weights, seed, count and batch size: the same images, the same FID.
  r = run_scorch("eval --workdir " + work.str() + ref.flags() + " --num 6 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(r.stdout_only);
  EXPECT_EQ(report["step"], 4);
  const double fid = evals[4]["fid"].get<double>();
  EXPECT_NEAR(report["fid"].get<double>(), fid, 1e-9 * fid);

  // eval.freq without a reference fails before the first step, naming the keys.
  TempDir bad("eval_train_bad");
  r = run_scorch("train --config " + kSource + "/configs/vp/cifar10_ddpmpp_continuous.yaml "
                 "--workdir " + bad.str() + tiny + " eval.reference=");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("eval.reference"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(bad.path / "checkpoints" / "checkpoint_00000002.pt"));
}

TEST(EvalModel, BadInvocationsAreNamed) {
  Reference ref(16);
  auto r = run_scorch("eval " + kImported + " --samples " + ref.dir.str() + ref.flags());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("exactly one"), std::string::npos) << r.output;
  r = run_scorch("eval " + kImported + " --extractor " + ref.detector.string() + " --num 4");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--ref"), std::string::npos) << r.output;
  r = run_scorch("eval --score-sde-checkpoint " + kSource +
                 "/tests/nn/data/score_sde/ddpm_checkpoint.pth" + ref.flags());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--config"), std::string::npos) << r.output;
  // Reference statistics of another dimension: named.
  r = run_scorch("eval " + kImported + " --ref " + ref.stats.string() +
                 " --extractor " + ref.detector.string() + " --num 4 --out " +
                 (ref.dir.path / "ref").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--out"), std::string::npos) << r.output;
}

// The built-in extractor: trained on part of Fashion-MNIST, it classifies the
// test split well, loads as a feature extractor, and scores the test split
// against the training statistics far better than noise.
TEST(Classifier, TrainsOnFashionMnistAndServesAsExtractor) {
  const std::string fashion = kFashionMnistDir;
  SCORCH_REQUIRE_OR_SKIP(fs::exists(fashion), fashion + " (Debian package dataset-fashion-mnist)");
  TempDir dir("classifier");
  const auto train = dir.path / "train", test = dir.path / "test", clf = dir.path / "clf.pt";
  auto r = run_scorch("data convert --from idx --input " + fashion + " --split train --limit 6000 --out " +
                      train.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_scorch("data convert --from idx --input " + fashion + " --split test --limit 1000 --out " +
                 test.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_scorch("classifier --data " + train.string() + " --test " + test.string() + " --out " +
                 clf.string() + " --epochs 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto trained = nlohmann::json::parse(r.stdout_only);
  // A two-layer CNN reaches ~85% on Fashion-MNIST from 6,000 images in 2 epochs.
  EXPECT_GT(trained["test_accuracy"].get<double>(), 0.78) << trained.dump();

  // A checkpoint Python can read, with the architecture named.
  r = run_command("/usr/bin/python3 -c \"import torch; c = torch.load('" + clf.string() +
                  "'); print(c['format'], c['classifier'], c['classes'], c['model']['fc1.weight'].shape[0])\"");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.stdout_only, "scorch-checkpoint fmnist-cnn-1 10 128\n");

  const auto stats = dir.path / "train.npz";
  r = run_scorch("stats --data " + train.string() + " --out " + stats.string() + " --extractor " +
                 clf.string() + " --features --limit 2000 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.stdout_only)["dim"], 128);
  r = run_scorch("eval --samples " + test.string() + " --ref " + stats.string() + " --extractor " +
                 clf.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto real = nlohmann::json::parse(r.stdout_only);
  write_random_dataset(dir.path / "noise", 1000, 28, 3);  // RGB noise: luminance, same size
  r = run_scorch("eval --samples " + (dir.path / "noise").string() + " --ref " + stats.string() +
                 " --extractor " + clf.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto noise = nlohmann::json::parse(r.stdout_only);
  EXPECT_LT(10 * real["fid"].get<double>(), noise["fid"].get<double>())
      << real.dump() << "\n" << noise.dump();
  // Test images spread over the 10 classes: IS near the class count; noise collapses.
  EXPECT_GT(real["inception_score"].get<double>(), 5.0);
  EXPECT_LT(noise["inception_score"].get<double>(), real["inception_score"].get<double>());
  EXPECT_GT(real["recall"].get<double>(), 0.5);

  // A dataset without labels cannot train it.
  r = run_scorch("classifier --data " + (dir.path / "noise").string() + " --out " +
                 (dir.path / "x.pt").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("no class labels"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace scorch::testing
