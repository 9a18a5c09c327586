// Adams-Bashforth and Adams-Bashforth-Moulton on a fixed grid (adams.h).
// Coefficients: Hairer, Norsett & Wanner I, III.1, Tables 1.1 (Adams-Bashforth,
// k = 4) and 1.2 (Adams-Moulton, k = 4).
#include "sampling/adams.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>

#include "core/error.h"

namespace scorch {
namespace {

constexpr int kSteps = 4;           // derivatives in the history
constexpr int kMaxCorrections = 4;  // torchdiffeq's _MAX_ITERS
// Weights of f_n, f_{n-1}, f_{n-2}, f_{n-3}.
constexpr std::array<double, kSteps> kBashforth{55.0 / 24, -59.0 / 24, 37.0 / 24, -9.0 / 24};
// Weight of f_{n+1}, then of f_n, ..., f_{n-3}.
constexpr double kMoultonNew = 251.0 / 720;
constexpr std::array<double, kSteps> kMoulton{646.0 / 720, -264.0 / 720, 106.0 / 720,
                                              -19.0 / 720};

// Classical RK4 from (t, y) with f0 = f(t, y) given.
torch::Tensor rk4_step(const OdeFn& f, double t, const torch::Tensor& y, const torch::Tensor& f0,
                       double h, int64_t* nfe) {
  const auto k2 = f(t + 0.5 * h, y.add(f0, 0.5 * h));
  const auto k3 = f(t + 0.5 * h, y.add(k2, 0.5 * h));
  const auto k4 = f(t + h, y.add(k3, h));
  *nfe += 3;
  return y + (h / 6) * (f0 + 2 * k2 + 2 * k3 + k4);
}

// y + h sum_j w_j history_j (history newest first).
torch::Tensor adams_sum(const torch::Tensor& y, double h, const std::array<double, kSteps>& w,
                        const std::deque<torch::Tensor>& history) {
  torch::Tensor out = y;
  for (int j = 0; j < kSteps; ++j) out = out.add(history[static_cast<size_t>(j)], h * w[j]);
  return out;
}

// Whether every element of two iterates agrees within atol + rtol max(|a|, |b|).
bool converged(const torch::Tensor& a, const torch::Tensor& b, double rtol, double atol) {
  const auto scale = atol + torch::maximum(a.abs(), b.abs()) * rtol;
  return ((a - b).abs() / scale).max().item<double>() < 1.0;
}

}  // namespace

OdeResult adams_solve(const OdeFn& f, const torch::Tensor& y0, double t0, double t1,
                      const OdeOptions& o) {
  TORCH_CHECK(o.method == OdeMethod::kExplicitAdams || o.method == OdeMethod::kImplicitAdams,
              "adams_solve: method ", ode_method_name(o.method), " is not an Adams method");
  const char* name = ode_method_name(o.method);
  const bool implicit = o.method == OdeMethod::kImplicitAdams;
  SCORCH_CHECK(o.num_steps >= 1, "ODE solver ", name, ": num_steps=", o.num_steps,
               " must be >= 1");
  if (implicit)
    SCORCH_CHECK(o.rtol >= 0 && o.atol >= 0 && o.rtol + o.atol > 0, "ODE solver ", name,
                 ": rtol=", o.rtol, " and atol=", o.atol,
                 " (the corrector's convergence test) must be >= 0 and not both 0");
  OdeResult r;
  const double h = (t1 - t0) / static_cast<double>(o.num_steps);
  torch::Tensor y = y0;
  std::deque<torch::Tensor> history;  // f_n, f_{n-1}, ... newest first
  for (int64_t n = 0; n < o.num_steps; ++n) {
    const double t = t0 + static_cast<double>(n) * h;
    // The grid point t + h, computed as the next step's t is (no drift in t).
    const double t_next = t0 + static_cast<double>(n + 1) * h;
    history.push_front(f(t, y));
    ++r.nfe;
    if (history.size() > kSteps) history.pop_back();
    if (history.size() < kSteps) {
      y = rk4_step(f, t, y, history.front(), h, &r.nfe);
      continue;
    }
    auto y_new = adams_sum(y, h, kBashforth, history);
    if (implicit) {
      const auto explicit_part = adams_sum(y, h, kMoulton, history);
      for (int it = 0; it < kMaxCorrections; ++it) {
        const auto corrected = explicit_part.add(f(t_next, y_new), h * kMoultonNew);
        ++r.nfe;
        const bool done = converged(y_new, corrected, o.rtol, o.atol);
        y_new = corrected;
        if (done) break;
      }
    }
    y = y_new;
  }
  r.y = y;
  r.steps = o.num_steps;
  return r;
}

}  // namespace scorch
