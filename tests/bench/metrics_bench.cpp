// FID cost from 50,000 x 2048 features (Inception pool3 size): the streaming
// float64 accumulation of S1 = sum f and S2 = sum f f^T (eval/metrics.h) at
// two batch sizes, then the final statistics and the eigendecomposition-based
// trace square root. Features are random: real ~ N(0, I), generated ~
// N(shift, scale^2 I), whose population FID d (shift^2 + (scale - 1)^2) is
// printed beside the finite-sample value (FID is biased upward at finite N,
// as tfgan's docstring warns; here mostly by the noise of two 2048-d covariances).
// Other processes share the cores: the load average is printed with the table.
//   bench_metrics [--num N] [--dim D] [--threads T] [--device cpu|cuda]
#include <torch/torch.h>
#include <torch/version.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>

#include "core/compat.h"   // defines: cpu_generator, randn
#include "eval/metrics.h"  // defines: FeatureStats, frechet_distance, trace_sqrt_product

namespace {

using namespace scorch;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// Accumulates `features` in batches of `batch` rows; returns the stats and seconds.
std::pair<FeatureStats, double> accumulate(const torch::Tensor& features, int64_t batch,
                                           const torch::Device& device) {
  FeatureStats stats(features.size(1), device);
  sync(device);
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < features.size(0); i += batch) {
    stats.update(features.slice(0, i, std::min(features.size(0), i + batch)));
  }
  stats.sum_outer().sum().item<double>();  // waits for the device
  return {std::move(stats), seconds_since(t0)};
}

}  // namespace

int main(int argc, char** argv) {
  int64_t num = 50000, dim = 2048;
  int threads = 0;
  std::string device_name = "cpu";
  const double shift = 0.01, scale = 1.05;
  CLI::App app{"FID from N x D random features: streaming statistics and final FID"};
  app.add_option("--num", num, "features per set")->check(CLI::PositiveNumber);
  app.add_option("--dim", dim, "feature dimension")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "LibTorch intra-op threads (0: LibTorch's default)");
  app.add_option("--device", device_name, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) torch::set_num_threads(threads);
  const torch::Device device(device_name);

  // float32 features on the device, as an extractor would hand them over.
  auto gen = compat::cpu_generator(1);
  const auto real = compat::randn({num, dim}, gen).to(device);
  const auto fake = (compat::randn({num, dim}, gen) * scale + shift).to(device);

  std::string load = "unknown";
  if (std::ifstream in("/proc/loadavg"); in) std::getline(in, load);
  std::printf(
      "FID from %lld x %lld float32 features, %s, %d intra-op threads, LibTorch %s; load "
      "average at start: %s\n\n",
      static_cast<long long>(num), static_cast<long long>(dim), device_name.c_str(),
      torch::get_num_threads(), TORCH_VERSION, load.c_str());
  std::printf("%-44s %8s %10s %12s\n", "stage", "batch", "seconds", "GFLOP/s");
  const double accumulate_flops = 2.0 * num * dim * dim;  // x^T x per set, full gemm
  for (int64_t batch : {64, 1024}) {
    const double s = accumulate(real, batch, device).second;
    std::printf("%-44s %8lld %10.3f %12.1f\n", "accumulate S1, S2 (one set, float64)",
                static_cast<long long>(batch), s, accumulate_flops / s * 1e-9);
  }
  auto [stats_real, s_real] = accumulate(real, 1024, device);
  auto [stats_fake, s_fake] = accumulate(fake, 1024, device);

  sync(device);
  auto t0 = Clock::now();
  const auto mu_r = stats_real.mean(), sigma_r = stats_real.covariance();
  const auto mu_f = stats_fake.mean(), sigma_f = stats_fake.covariance();
  sync(device);
  const double s_stats = seconds_since(t0);
  std::printf("%-44s %8s %10.3f\n", "mean + covariance (both sets)", "-", s_stats);

  t0 = Clock::now();
  const double tr = trace_sqrt_product(sigma_r, sigma_f);
  const double s_trace = seconds_since(t0);
  std::printf("%-44s %8s %10.3f\n", "Tr sqrt(S1 S2): eigh, 2 matmuls, eigvalsh", "-", s_trace);

  t0 = Clock::now();
  const double fid = frechet_distance(mu_r, sigma_r, mu_f, sigma_f);
  const double s_fid = seconds_since(t0);
  std::printf("%-44s %8s %10.3f\n", "frechet_distance (from mean, covariance)", "-", s_fid);
  std::printf("%-44s %8s %10.3f\n", "total: 2 sets (batch 1024), stats, FID", "-",
              s_real + s_fake + s_stats + s_fid);

  const double population = dim * (shift * shift + (scale - 1) * (scale - 1));
  std::printf("\nFID %.6f (population value %.6f; Tr sqrt %.3f)\n", fid, population, tr);
  return 0;
}
