// UniPC with B(h) = bh2, data prediction (Zhao et al. 2023; the step
// schedule and coefficients of diffusers' UniPCMultistepScheduler and of the
// authors' uni_pc.py), on the denoiser of sigma_denoiser.h. See unipc.h.
#include "sampling/unipc.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/sample_noise.h"

namespace scorch {
namespace {

// An earlier evaluation: its log-SNR and denoised value.
struct Point {
  double lambda;
  torch::Tensor d;
};

// Solves the small dense system a x = b (a row-major n x n) by Gaussian
// elimination with partial pivoting.
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::abs(a[r][c]) > std::abs(a[p][c])) p = r;
    std::swap(a[c], a[p]);
    std::swap(b[c], b[p]);
    for (size_t r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (size_t k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (size_t c = n; c-- > 0;) {
    double v = b[c];
    for (size_t k = c + 1; k < n; ++k) v -= a[c][k] * x[k];
    x[c] = v / a[c][c];
  }
  return x;
}

// One UniP (corrector = false) or UniC (corrector = true) update of order p
// from x at lambda_s to lambda_t. history: the evaluations up to s, newest
// last (D_0 = history.back() at lambda_s); d_t: D(x_t; sigma_t) for UniC.
torch::Tensor unipc_update(const torch::Tensor& x, double lambda_s, double lambda_t,
                           const std::deque<Point>& history, int64_t p, bool corrector,
                           const torch::Tensor& d_t) {
  const double h = lambda_t - lambda_s, hh = -h;
  const double h_phi_1 = std::expm1(hh);
  const double b_h = std::expm1(hh);  // bh2
  const auto& d0 = history.back().d;
  // r_k and (D_k - D_0) / r_k for the p - 1 evaluations before s.
  std::vector<double> r;
  std::vector<torch::Tensor> diffs;
  for (int64_t k = 1; k < p; ++k) {
    const auto& pk = history[history.size() - 1 - k];
    r.push_back((pk.lambda - lambda_s) / h);
    diffs.push_back((pk.d - d0) / r.back());
  }
  r.push_back(1.0);
  // b_i = i! (-h) phi_{i+1}(-h) / B(h), i = 1..p; R_{ik} = r_k^(i-1).
  std::vector<double> b;
  std::vector<std::vector<double>> big_r;
  double h_phi_k = h_phi_1 / hh - 1, factorial = 1;
  for (int64_t i = 1; i <= p; ++i) {
    std::vector<double> row;
    for (double rk : r) row.push_back(std::pow(rk, static_cast<double>(i - 1)));
    big_r.push_back(row);
    b.push_back(h_phi_k * factorial / b_h);
    factorial *= static_cast<double>(i + 1);
    h_phi_k = h_phi_k / hh - 1 / factorial;
  }
  auto out = x * std::exp(-h) - d0 * h_phi_1;  // e^{-h} = sigma_t / sigma_s
  if (!corrector) {
    if (p == 1) return out;
    std::vector<double> rho = {0.5};  // p = 2
    if (p == 3) rho = solve({{big_r[0][0], big_r[0][1]}, {big_r[1][0], big_r[1][1]}}, {b[0], b[1]});
    torch::Tensor res = diffs[0] * rho[0];
    for (size_t k = 1; k < diffs.size(); ++k) res = res + diffs[k] * rho[k];
    return out - res * b_h;
  }
  const std::vector<double> rho = p == 1 ? std::vector<double>{0.5} : solve(big_r, b);
  torch::Tensor res = (d_t - d0) * rho.back();
  for (size_t k = 0; k < diffs.size(); ++k) res = res + diffs[k] * rho[k];
  return out - res * b_h;
}

}  // namespace

SampleResult unipc_from(const Denoiser& denoiser, const torch::Tensor& z,
                        const torch::Tensor& sigmas, const UniPcOptions& o) {
  SCORCH_CHECK(o.order >= 1 && o.order <= 3, "sampling.order=", o.order,
               " is not a UniPC order; use 1, 2 or 3");
  torch::NoGradGuard no_grad;
  const std::vector<double> levels = checked_levels(z, sigmas, "unipc_from");
  const int64_t n = static_cast<int64_t>(levels.size()) - 1;

  auto x = z.to(torch::kDouble) * levels[0];
  std::deque<Point> history;  // at most `order` evaluations, newest last
  torch::Tensor last_x;       // the state before the last predictor step
  int64_t last_order = 0;     // that step's order
  int64_t nfe = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double lambda = -std::log(levels[i]);
    auto d = denoiser(x, levels[i]);
    ++nfe;
    if (i > 0)  // UniC: correct x_i with D(x_i), which the predictor below reuses
      x = unipc_update(last_x, history.back().lambda, lambda, history, last_order, true, d);
    history.push_back({lambda, d});
    if (static_cast<int64_t>(history.size()) > o.order) history.pop_front();
    if (levels[i + 1] == 0) {  // the first-order step to sigma = 0 is D itself
      x = d;
      break;
    }
    last_order = std::min({o.order, i + 1, n - i});
    last_x = x;
    x = unipc_update(x, lambda, -std::log(levels[i + 1]), history, last_order, false, {});
  }
  return {x, nfe};
}

SampleResult unipc_sample(const Sde& sde, const ScoreFn& score, at::IntArrayRef shape,
                          const torch::TensorOptions& tensor_options, const UniPcOptions& o) {
  const auto sigmas = multistep_sigmas(sde, o.schedule, o.num_steps, o.eps, o.rho);
  const auto z = sample_randn(shape, tensor_options);
  auto r = unipc_from(o.denoiser ? o.denoiser : sde_denoiser(sde, score, z.scalar_type(), nullptr),
                      z, sigmas, o);
  return {r.x.to(z.scalar_type()), r.nfe};
}

}  // namespace scorch
