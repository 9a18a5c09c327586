// Discrete noise schedules: linear betas (Ho et al. 2020, sec. 4), cosine
// alpha_bar (Nichol and Dhariwal 2021, eq. 17, with their max_beta clip) and
// geometric sigmas (Song and Ermon 2019, sec. 4.2). All in float64.
#include "sde/schedules.h"

#include <algorithm>
#include <cmath>

namespace scorch {

namespace {
const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
}  // namespace

torch::Tensor linear_beta_schedule(int64_t n, double beta_start, double beta_end) {
  TORCH_CHECK(n >= 1, "linear_beta_schedule: n must be >= 1, got ", n);
  return torch::linspace(beta_start, beta_end, n, kF64);
}

torch::Tensor cosine_beta_schedule(int64_t n, double s, double max_beta) {
  TORCH_CHECK(n >= 1, "cosine_beta_schedule: n must be >= 1, got ", n);
  TORCH_CHECK(max_beta > 0.0 && max_beta <= 1.0, "cosine_beta_schedule: max_beta ", max_beta,
              " must be in (0, 1]");
  const double half_pi = std::acos(-1.0) / 2.0;
  auto f = [&](double k) {
    const double c = std::cos((k / static_cast<double>(n) + s) / (1.0 + s) * half_pi);
    return c * c;
  };
  // beta_k = 1 - alpha_bar(k+1) / alpha_bar(k); the f(0) normalisation cancels.
  auto betas = torch::empty({n}, kF64);
  auto acc = betas.accessor<double, 1>();
  for (int64_t k = 0; k < n; ++k) {
    acc[k] = std::min(1.0 - f(static_cast<double>(k + 1)) / f(static_cast<double>(k)), max_beta);
  }
  return betas;
}

torch::Tensor geometric_sigma_schedule(int64_t n, double sigma_min, double sigma_max) {
  TORCH_CHECK(n >= 1, "geometric_sigma_schedule: n must be >= 1, got ", n);
  TORCH_CHECK(sigma_min > 0.0 && sigma_max > 0.0, "geometric_sigma_schedule: sigmas must be > 0");
  return torch::exp(torch::linspace(std::log(sigma_min), std::log(sigma_max), n, kF64));
}

}  // namespace scorch
