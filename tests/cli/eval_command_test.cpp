// `scorch stats` and `scorch eval --samples` end to end with a TorchScript
// extractor made here: statistics equal those computed directly from the
// features; FID of a dataset against its own statistics is 0; FID between two
// datasets matches the closed form of their feature moments; 2 ranks agree
// with 1 process; pytorch-fid-style .npz statistics (mu, sigma only) load;
// bad inputs are errors naming the file.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <iomanip>
#include <nlohmann/json.hpp>

#include "data/shard_writer.h"
#include "eval/metrics.h"
#include "testing/command.h"   // defines: run_scorch, run_command, mpirun_scorch
#include "testing/detector.h"  // defines: save_detector, features_of
#include "testing/temp_dir.h"  // defines: TempDir

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

// n random RGB images 6x6 with a per-dataset brightness offset.
torch::Tensor random_images(int64_t n, int64_t seed, int64_t offset) {
  torch::manual_seed(seed);
  return (torch::randint(0, 200, {n, 6, 6, 3}) + offset).clamp(0, 255).to(torch::kByte);
}

void write_dataset(const fs::path& dir, const torch::Tensor& images) {
  ShardWriterOptions o;
  o.sample_shape = {images.size(1), images.size(2), images.size(3)};
  o.shard_size = 40;
  ShardWriter w(dir.string(), o);
  w.add_batch(images);
  w.finish();
}

struct Fixture {
  TempDir dir{"eval_cli"};
  fs::path detector = dir.path / "detector.pt";
  fs::path a = dir.path / "a", b = dir.path / "b";
  torch::Tensor images_a = random_images(101, 1, 0), images_b = random_images(90, 2, 30);
  Fixture() {
    save_detector(detector.string());
    write_dataset(a, images_a);
    write_dataset(b, images_b);
  }
};

TEST(EvalCli, StatsMatchTheFeaturesAndFidAgainstItselfIsZero) {
  Fixture f;
  const auto stats = f.dir.path / "a.npz";
  auto r = run_scorch("stats --data " + f.a.string() + " --out " + stats.string() +
                      " --extractor " + f.detector.string() + " --features --batch 16 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.stdout_only)["count"], 101);

  r = run_scorch("eval --samples " + f.a.string() + " --ref " + stats.string() +
                 " --extractor " + f.detector.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(r.stdout_only);
  EXPECT_NEAR(report["fid"].get<double>(), 0.0, 1e-8);
  EXPECT_NEAR(report["precision"].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(report["recall"].get<double>(), 1.0, 1e-12);
  EXPECT_TRUE(report["kid"].is_number());
  EXPECT_GE(report["inception_score"].get<double>(), 1.0);
}

TEST(EvalCli, FidBetweenDatasetsMatchesTheirFeatureMoments) {
  Fixture f;
  const auto stats = f.dir.path / "a.npz";
  auto r = run_scorch("stats --data " + f.a.string() + " --out " + stats.string() +
                      " --extractor " + f.detector.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_scorch("eval --samples " + f.b.string() + " --ref " + stats.string() +
                 " --extractor " + f.detector.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(r.stdout_only);
  // Expected: the Frechet distance of the two feature sets' moments, with the
  // N-1 covariance of each set computed here.
  auto moments = [](const torch::Tensor& feats) {
    const auto mu = feats.mean(0);
    const auto c = feats - mu;
    return std::make_pair(mu, c.t().mm(c) / (feats.size(0) - 1));
  };
  const auto [mu_a, s_a] = moments(features_of(f.images_a));
  const auto [mu_b, s_b] = moments(features_of(f.images_b));
  const double expected = frechet_distance(mu_b, s_b, mu_a, s_a);
  EXPECT_GT(expected, 100.0);  // the offset of 30 grey levels shows
  // The detector computes its features in float32 (relative rounding ~1e-7);
  // the expectation here is float64 throughout.
  EXPECT_NEAR(report["fid"].get<double>(), expected, 1e-6 * expected);
  EXPECT_TRUE(report["kid"].is_null()) << "the statistics were saved without features";

  // Two ranks give the same report as one process, on either backend.
  for (const std::string backend : {"mpi", "gloo"}) {
    r = mpirun_scorch(2, "eval --samples " + f.b.string() + " --ref " + stats.string() +
                             " --extractor " + f.detector.string() + " --json dist.backend=" +
                             backend);
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.output;
    const auto two = nlohmann::json::parse(r.stdout_only);
    EXPECT_NEAR(two["fid"].get<double>(), report["fid"].get<double>(), 1e-9 * expected);
    EXPECT_NEAR(two["inception_score"].get<double>(), report["inception_score"].get<double>(),
                1e-12);
  }
}

TEST(EvalCli, ThreeRanksComputeTheSameStatistics) {
  Fixture f;
  const auto one = f.dir.path / "one.npz", three = f.dir.path / "three.npz";
  auto r = run_scorch("stats --data " + f.a.string() + " --out " + one.string() +
                      " --extractor " + f.detector.string() + " --features");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const std::string backend : {"mpi", "gloo"}) {
    r = mpirun_scorch(3, "stats --data " + f.a.string() + " --out " + three.string() +
                             " --extractor " + f.detector.string() +
                             " --features --batch 7 dist.backend=" + backend);
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.output;
    // numpy reads Scorch's files: compare the two with it.
    r = run_command("/usr/bin/python3 -c \"import numpy as np; a=np.load('" + one.string() +
                    "'); b=np.load('" + three.string() +
                    "'); print(abs(a['mu']-b['mu']).max()/abs(a['mu']).max(), "
                    "abs(a['sigma']-b['sigma']).max()/abs(a['sigma']).max(), "
                    "(a['features']==b['features']).all(), int(a['count']))\"");
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.output;
    std::istringstream out(r.stdout_only);
    double dmu = 1, dsigma = 1;
    std::string same;
    int64_t count = 0;
    out >> dmu >> dsigma >> same >> count;
    EXPECT_LE(dmu, 1e-12);
    EXPECT_LE(dsigma, 1e-9);
    EXPECT_EQ(same, "True");
    EXPECT_EQ(count, 101);
  }
}

TEST(EvalCli, PytorchFidStyleStatisticsLoadAndBadInputsAreNamed) {
  Fixture f;
  // mu and sigma only, as pytorch-fid's --save-stats writes them (numpy.savez_compressed).
  const auto feats = features_of(f.images_a);
  const auto mu = feats.mean(0);
  const auto c = feats - mu;
  const auto sigma = c.t().mm(c) / (feats.size(0) - 1);
  const auto npz = f.dir.path / "ref.npz";
  std::ostringstream py;
  py << "/usr/bin/python3 -c \"import numpy as np; np.savez_compressed('" << npz.string()
     << "', mu=np.array([";
  for (int64_t i = 0; i < mu.numel(); ++i) py << (i ? "," : "") << std::setprecision(17) << mu[i].item<double>();
  py << "]), sigma=np.array([";
  for (int64_t i = 0; i < sigma.numel(); ++i)
    py << (i ? "," : "") << std::setprecision(17) << sigma.reshape({-1})[i].item<double>();
  py << "]).reshape(" << mu.numel() << "," << mu.numel() << "))\"";
  auto r = run_command(py.str());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_scorch("eval --samples " + f.a.string() + " --ref " + npz.string() + " --extractor " +
                 f.detector.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(nlohmann::json::parse(r.stdout_only)["fid"].get<double>(), 0.0, 1e-8);

  r = run_scorch("eval --samples " + f.a.string() + " --ref " + (f.dir.path / "none.npz").string() +
                 " --extractor " + f.detector.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("none.npz"), std::string::npos) << r.output;
  r = run_scorch("stats --data " + f.a.string() + " --out " + (f.dir.path / "x.npz").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--extractor"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace scorch::testing
