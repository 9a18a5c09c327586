// Sliced-Wasserstein quality of 2-D samples against held-out data (see toy_quality.h).
#include "eval/toy_quality.h"

#include "core/compat.h"
#include "core/config.h"
#include "core/rng.h"
#include "data/toy2d.h"
#include "eval/sample_distance.h"

namespace scorch {
namespace {
constexpr uint64_t kHeldOutStream = 0x4E1D;
constexpr int64_t kProjections = 256;
constexpr uint64_t kFloorStream = 1000;  // floor draw k > 0: stream kFloorStream + k
}  // namespace

torch::Tensor toy_held_out(const Config& config, int64_t n) {
  return sample_toy2d(toy2d_kind(config.data.dataset), n,
                      compat::cpu_generator(derive_seed(config.seed, kHeldOutStream, 0)));
}

ToyQuality toy_quality(const Config& config, const torch::Tensor& samples) {
  const int64_t n = samples.size(0);
  const auto kind = toy2d_kind(config.data.dataset);
  auto held_out = toy_held_out(config, n);
  auto second =
      sample_toy2d(kind, n, compat::cpu_generator(derive_seed(config.seed, kHeldOutStream, 1)));
  // Moment-matched Gaussian: mean + L z with L the Cholesky factor of the covariance.
  auto d = second.to(torch::kDouble);
  auto mean = d.mean(0);
  auto centred = d - mean;
  auto cov = centred.t().matmul(centred) / static_cast<double>(n - 1);
  auto gen = compat::cpu_generator(derive_seed(config.seed, kHeldOutStream, 2));
  auto gauss =
      mean + compat::randn({n, 2}, gen, torch::kDouble).matmul(torch::linalg_cholesky(cov).t());

  ToyQuality q;
  q.num_samples = n;
  auto proj = [&](uint64_t k) {
    return compat::cpu_generator(derive_seed(config.seed, kHeldOutStream, 10 + k));
  };
  q.swd = sliced_wasserstein(samples.to(torch::kCPU, torch::kDouble), held_out.to(torch::kDouble),
                             kProjections, proj(0));
  // Draw 1 (`second`, which also gives the baseline's moments), then draws
  // kFloorStream + 1, ...: the first is the floor of earlier versions.
  double floor_sum = sliced_wasserstein(second.to(torch::kDouble), held_out.to(torch::kDouble),
                                        kProjections, proj(0));
  for (int64_t k = 1; k < kToyFloorDraws; ++k) {
    auto draw = sample_toy2d(
        kind, n, compat::cpu_generator(derive_seed(config.seed, kHeldOutStream, kFloorStream + k)));
    floor_sum += sliced_wasserstein(draw.to(torch::kDouble), held_out.to(torch::kDouble),
                                    kProjections, proj(0));
  }
  q.swd_floor = floor_sum / kToyFloorDraws;
  q.swd_gaussian = sliced_wasserstein(gauss, held_out.to(torch::kDouble), kProjections, proj(0));
  return q;
}

nlohmann::json to_json(const ToyQuality& q) {
  return {{"swd", q.swd},
          {"swd_floor", q.swd_floor},
          {"swd_gaussian", q.swd_gaussian},
          {"num_samples", q.num_samples}};
}

}  // namespace scorch
