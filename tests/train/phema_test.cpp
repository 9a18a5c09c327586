// Power-function EMA and post-hoc reconstruction (train/phema.h): the
// closed forms, the EMA applied step by step against its closed-form weighted
// average, and coefficients and reconstructed weights against NVlabs/edm2's
// training/phema.py.
//
// Reference values: computed by running NVlabs/edm2 training/phema.py (commit
// of the public repository, functions std_to_exp, exp_to_std,
// power_function_beta, power_function_correlation, solve_posthoc_coefficients
// and class PowerFunctionEMA on a float64 torch.nn.Linear(3, 1)) with numpy
// 2.4 and torch 2.15 on the CPU, beside the project; only the printed numbers
// are pasted here.
#include "train/phema.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/config.h"
#include "core/error.h"
#include "testing/local_comm.h"
#include "testing/temp_dir.h"  // defines: TempDir

namespace scorch {
namespace {

namespace fs = std::filesystem;

// Trainable "w" [2] and "b" [], a frozen "fourier" [3].
struct Toy : torch::nn::Module {
  Toy() {
    w = register_parameter("w", torch::zeros({2}));
    b = register_parameter("b", torch::zeros({}));
    fourier = register_parameter("fourier", torch::full({3}, 7.0), /*requires_grad=*/false);
  }
  void set(const std::vector<double>& v) {
    torch::NoGradGuard no_grad;
    w[0].fill_(v[0]);
    w[1].fill_(v[1]);
    b.fill_(v[2]);
  }
  torch::Tensor w, b, fourier;
};

std::vector<double> values(const std::map<std::string, torch::Tensor>& weights) {
  const auto w = weights.at("w").to(torch::kDouble), b = weights.at("b").to(torch::kDouble);
  return {w[0].item<double>(), w[1].item<double>(), b.item<double>()};
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol) << what << " [" << i << "]";
}

ModelConfig phema_config(std::vector<double> stds) {
  ModelConfig c;
  c.phema_std = std::move(stds);
  return c;
}

TEST(Phema, StdAndExponentMatchEdm2) {
  // phema.py std_to_exp(0.05, 0.1, 0.2, 0.28).
  const std::pair<double, double> pairs[] = {{0.05, 16.972198602303447},
                                             {0.1, 6.937203937601809},
                                             {0.2, 1.8262137798958404},
                                             {0.28, 0.16934399376949866}};
  for (const auto& [sigma, exp] : pairs) {
    EXPECT_NEAR(phema_std_to_exp(sigma), exp, 1e-12 * exp) << sigma;
    EXPECT_NEAR(phema_exp_to_std(phema_std_to_exp(sigma)), sigma, 1e-14) << sigma;
  }
  // phema.py exp_to_std(0.5, 6.94, 16.97).
  EXPECT_NEAR(phema_exp_to_std(0.5), 0.26186146828319085, 1e-15);
  EXPECT_NEAR(phema_exp_to_std(6.94), 0.09997226695670997, 1e-15);
  EXPECT_NEAR(phema_exp_to_std(16.97), 0.050005488615773995, 1e-15);
  // sigma_rel = sqrt(gamma+1) / ((gamma+2) sqrt(gamma+3)): gamma = 0 is sqrt(1/12).
  EXPECT_NEAR(phema_exp_to_std(0), std::sqrt(1.0 / 12), 1e-16);
  EXPECT_NEAR(phema_std_to_exp(kPhemaStdMax), 0, 1e-9);
  for (double g : {0.01, 0.3, 1.0, 4.0, 30.0, 300.0, 3000.0})
    EXPECT_NEAR(phema_std_to_exp(phema_exp_to_std(g)), g, 1e-9 * (1 + g)) << g;
}

TEST(Phema, BetaAndCorrelationMatchEdm2) {
  // power_function_beta(0.05, 1000, 4) and (0.1, 64, 4).
  EXPECT_NEAR(phema_beta(0.05, 1000, 4), 0.9305002292203121, 1e-14);
  EXPECT_NEAR(phema_beta(0.1, 64, 4), 0.5991427447888775, 1e-14);
  // (1 - 1/t)^(gamma + 1) with t in steps of one image.
  const double g = phema_std_to_exp(0.1);
  EXPECT_NEAR(phema_beta(0.1, 10, 1), std::pow(0.9, g + 1), 1e-15);
  EXPECT_EQ(phema_beta(0.05, 4, 4), 0.0);  // the first step copies the weights
  // power_function_correlation(64, 0.05, 256, 0.1), and its symmetry.
  EXPECT_NEAR(phema_correlation(64, 0.05, 256, 0.1), 1.4895412322562753e-06, 1e-20);
  EXPECT_NEAR(phema_correlation(256, 0.1, 64, 0.05), 1.4895412322562753e-06, 1e-20);
  // <p, p> of p(tau) = (g+1) tau^g / t^(g+1) on [0, t]: (g+1)^2 / ((2g+1) t).
  EXPECT_NEAR(phema_correlation(100, 0.1, 100, 0.1), (g + 1) * (g + 1) / ((2 * g + 1) * 100),
              1e-15);
}

// solve_posthoc_coefficients(in_ofs=[64,64,128,128,192,192,256,256],
// in_std=[0.05,0.1]*4, out_ofs=256, out_std=[0.08, 0.15]).
const std::vector<double> kEdm2Coefficients008 = {1.3352644898071281e-07, -1.8250442999635383e-06,
                                                  1.7924190865608596e-04, -9.7138765964168078e-04,
                                                  1.1441412068153183e-02, -4.1754590381515792e-02,
                                                  2.5053922382422450e-01, 7.8056779175797475e-01};
const std::vector<double> kEdm2Coefficients015 = {-5.6203510794240697e-04, 1.9440693037546350e-03,
                                                  -1.3147865594997876e-02, 3.8019966635525246e-02,
                                                  -7.7958372150210745e-02, 2.0040864007962428e-01,
                                                  -2.6406197079986582e-01, 1.1153575676341128e+00};

std::vector<PhemaProfile> four_snapshots() {
  std::vector<PhemaProfile> in;
  for (double t : {64.0, 128.0, 192.0, 256.0})
    for (double s : {0.05, 0.1}) in.push_back({t, s});
  return in;
}

TEST(Phema, CoefficientsMatchEdm2) {
  const auto in = four_snapshots();
  const auto a = solve_phema_coefficients(in, {256, 0.08});
  const auto b = solve_phema_coefficients(in, {256, 0.15});
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_NEAR(a.coefficients[i], kEdm2Coefficients008[i],
                1e-9 + 1e-7 * std::fabs(kEdm2Coefficients008[i]));
    EXPECT_NEAR(b.coefficients[i], kEdm2Coefficients015[i],
                1e-9 + 1e-7 * std::fabs(kEdm2Coefficients015[i]));
  }
  // A stored profile reconstructs itself exactly, with no residual.
  const auto self = solve_phema_coefficients(in, {256, 0.1});
  for (size_t i = 0; i < in.size(); ++i)
    EXPECT_NEAR(self.coefficients[i], i == 7 ? 1.0 : 0.0, 1e-9);
  EXPECT_LT(self.residual, 1e-6);
  // Farther from the stored profiles, the residual grows.
  EXPECT_GT(solve_phema_coefficients(in, {256, 0.01}).residual, b.residual);
  EXPECT_GT(b.residual, a.residual);
  EXPECT_THROW(solve_phema_coefficients({{64, 0.05}, {64, 0.05}}, {64, 0.05}), Error);
}

// After k steps of batch B (t_j = B j), the update's weights telescope:
// ema_k = sum_j theta_j (j^(g+1) - (j-1)^(g+1)) / k^(g+1) (theta_0 has none).
TEST(Phema, StepByStepEqualsClosedFormAverage) {
  torch::manual_seed(3);
  const int64_t steps = 40, batch = 3;
  const auto thetas = torch::randn({steps + 1, 3}, torch::kDouble);
  Toy model;
  model.set(
      {thetas[0][0].item<double>(), thetas[0][1].item<double>(), thetas[0][2].item<double>()});
  Ema ema(model, phema_config({0.05, 0.2}));
  ASSERT_EQ(ema.names(), (std::vector<std::string>{"0.9999", "phema_0.05", "phema_0.2"}));
  for (int64_t k = 1; k <= steps; ++k) {
    const auto t = thetas[k];
    model.set({t[0].item<double>(), t[1].item<double>(), t[2].item<double>()});
    ema.update(model, batch, (k - 1) * batch);
    if (k % 10 != 0) continue;
    for (double sigma : {0.05, 0.2}) {
      const double g1 = phema_std_to_exp(sigma) + 1;
      auto want = torch::zeros({3}, torch::kDouble);
      for (int64_t j = 1; j <= k; ++j)
        want += thetas[j] * (std::pow(j, g1) - std::pow(j - 1, g1)) / std::pow(k, g1);
      expect_near(values(ema.shadow(Ema::phema_name(sigma))),
                  {want[0].item<double>(), want[1].item<double>(), want[2].item<double>()}, 1e-5,
                  "step " + std::to_string(k) + " std " + std::to_string(sigma));
    }
  }
  // A skipped step leaves every profile's bits alone.
  const auto before = ema.shadow("phema_0.05").at("w").clone();
  model.set({100, 100, 100});
  ema.update(model, batch, steps * batch, torch::ones({}));
  EXPECT_TRUE(torch::equal(ema.shadow("phema_0.05").at("w"), before));
}

TEST(Phema, BadStdIsAnError) {
  Toy model;
  EXPECT_THROW(Ema(model, phema_config({0.0})), Error);
  EXPECT_THROW(Ema(model, phema_config({0.29})), Error);
  EXPECT_EQ(Ema::configured_names(phema_config({0.05, 0.1})),
            (std::vector<std::string>{"0.9999", "phema_0.05", "phema_0.1"}));
}

std::vector<double> theta(int64_t k) {
  return {std::sin(0.1 * k), std::cos(0.05 * k), 0.001 * std::pow(k, 1.5)};
}

// EDM2's PowerFunctionEMA(stds=[0.05, 0.1]) over theta(k), k = 1..64, with
// update(cur_nimg=4k, batch_size=4), snapshots of both profiles at every
// 64 images, then sum_i X[i, j] * snapshot_i with solve_posthoc_coefficients
// at 256 images for [0.08, 0.15]: the values below.
TEST(Phema, SnapshotsAndReconstructionMatchEdm2) {
  testing::TempDir dir("phema_recon");
  Config config;
  config.model.phema_std = {0.05, 0.1};
  config.training.phema_snapshot_kimg = 0.064;
  Toy model;
  model.set(theta(0));
  Ema ema(model, config.model);
  for (int64_t k = 1; k <= 64; ++k) {
    model.set(theta(k));
    ema.update(model, 4, 4 * (k - 1));
    if (4 * k % 64 == 0)
      save_phema_snapshots((dir.path / "phema").string(), ema, model, k, 4 * k, to_yaml(config),
                           testing::local_comm());
  }
  // final tracked profiles (PowerFunctionEMA.emas after the last update)
  expect_near(values(ema.shadow("phema_0.05")),
              {-0.15525726926111894, -0.9838899130743188, 0.47813121503185013}, 1e-5, "0.05");
  expect_near(values(ema.shadow("phema_0.1")),
              {-0.39061082714706036, -0.9172886194552299, 0.43615655731663}, 1e-5, "0.1");

  const auto files = list_phema_snapshots((dir.path / "phema").string());
  ASSERT_EQ(files.size(), 8u);
  EXPECT_EQ(fs::path(files[0].path).filename().string(), "phema-000000000064-0.05.pt");
  EXPECT_EQ(files[7].nimg, 256);
  EXPECT_EQ(files[7].sigma, 0.1);
  PhemaReconstructOptions options;
  options.max_residual = 1;
  const auto out = reconstruct_phema(files, {0.08, 0.15}, options);
  ASSERT_EQ(out.size(), 2u);
  const std::vector<double> want[] = {
      {-0.32025539564540706, -0.9476512006582378, 0.45180791992917224},
      {-0.4771641865478944, -0.814667670115602, 0.3966874245226134}};
  for (size_t j = 0; j < 2; ++j) {
    const auto& c = out[j].checkpoint;
    EXPECT_EQ(out[j].nimg, 256);
    expect_near(values(c.model), want[j], 1e-5, "reconstruction " + std::to_string(j));
    for (size_t i = 0; i < 8; ++i)
      EXPECT_NEAR(out[j].fit.coefficients[i],
                  (j == 0 ? kEdm2Coefficients008 : kEdm2Coefficients015)[i], 1e-6);
    // The frozen parameter comes from the newest snapshot; every EMA is the reconstruction.
    EXPECT_TRUE(torch::equal(c.model.at("fourier"), torch::full({3}, 7.0)));
    const Config written = parse_config(c.config_yaml, "output");
    EXPECT_EQ(written.model.phema_std, std::vector<double>{out[j].sigma});
    ASSERT_EQ(c.ema.size(), 2u);
    for (const auto& [name, weights] : c.ema) expect_near(values(weights), want[j], 1e-5, name);
    EXPECT_EQ(c.step, 64);
    EXPECT_EQ(c.images_seen, 256);
  }
  // A requested std the profiles cannot express, and invalid ones.
  options.max_residual = 0.1;
  EXPECT_THROW(reconstruct_phema(files, {0.01}, options), Error);
  EXPECT_THROW(reconstruct_phema(files, {0.3}, options), Error);
  EXPECT_THROW(reconstruct_phema({}, {0.1}, options), Error);
  // --in-std 0.05: only those profiles; 0.05 itself is the newest one exactly.
  options.in_std = {0.05};
  const auto only = reconstruct_phema(files, {0.05}, options);
  EXPECT_EQ(only[0].inputs.size(), 4u);
  expect_near(values(only[0].checkpoint.model), values(ema.shadow("phema_0.05")), 1e-6, "self");
}

}  // namespace
}  // namespace scorch
