// Explicit Runge-Kutta solvers and the dispatch to the Adams methods
// (ode_solver.h, adams.h). The adaptive driver is scipy's
// RungeKutta._step_impl (scipy/integrate/_ivp/rk.py): error norm RMS of
// err / (atol + rtol max(|y|, |y_new|)), new h = h min(10, 0.9 err^(-1/(q+1)))
// on acceptance (q = order of the error estimator; no growth right after a
// rejection), h max(0.2, 0.9 err^(-1/(q+1))) on rejection, and Hairer's
// initial step (Hairer, Norsett & Wanner I, II.4; scipy select_initial_step).
// Tableaux: Heun-Euler 2(1); Bogacki & Shampine 1989 3(2) and Dormand & Prince
// 1980 5(4) with scipy RK23 / RK45 coefficients, both FSAL, propagating the
// higher-order solution (local extrapolation); DOP853 (dopri8.h) with its own
// error norm, as scipy's DOP853 subclass of the same driver.
#include "sampling/ode_solver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "sampling/adams.h"
#include "sampling/dopri8.h"
#include "sampling/rk_tableau.h"

namespace scorch {
namespace {

constexpr double kSafety = 0.9;
constexpr double kMinFactor = 0.2;
constexpr double kMaxFactor = 10.0;

using Tableau = RkTableau;

const Tableau& tableau(OdeMethod method) {
  static const Tableau euler{{0.0}, {{}}, {1.0}, {}, {}, false, 0};
  static const Tableau midpoint{{0.0, 0.5}, {{}, {0.5}}, {0.0, 1.0}, {}, {}, false, 0};
  static const Tableau heun{{0.0, 1.0}, {{}, {1.0}}, {0.5, 0.5}, {}, {}, false, 0};
  static const Tableau rk4{{0.0, 0.5, 0.5, 1.0},
                           {{}, {0.5}, {0.0, 0.5}, {0.0, 0.0, 1.0}},
                           {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6},
                           {},
                           {},
                           false,
                           0};
  // Heun (order 2) with Euler (order 1) embedded: err = h (k2 - k1) / 2.
  static const Tableau heun_euler{{0.0, 1.0}, {{}, {1.0}}, {0.5, 0.5}, {-0.5, 0.5}, {}, false, 1};
  // scipy RK23: C, A, B, E (E has one more entry, for k4 = f(t + h, y_new)).
  static const Tableau bosh3{{0.0, 0.5, 0.75, 1.0},
                             {{}, {0.5}, {0.0, 0.75}, {2.0 / 9, 1.0 / 3, 4.0 / 9}},
                             {2.0 / 9, 1.0 / 3, 4.0 / 9, 0.0},
                             {5.0 / 72, -1.0 / 12, -1.0 / 9, 1.0 / 8},
                             {},
                             true,
                             2};
  // scipy RK45 (Dormand-Prince 5(4)).
  static const Tableau dopri5{
      {0.0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0},
      {{},
       {1.0 / 5},
       {3.0 / 40, 9.0 / 40},
       {44.0 / 45, -56.0 / 15, 32.0 / 9},
       {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
       {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
       {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}},
      {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0.0},
      {-71.0 / 57600, 0.0, 71.0 / 16695, -71.0 / 1920, 17253.0 / 339200, -22.0 / 525, 1.0 / 40},
      {},
      true,
      4};
  switch (method) {
    case OdeMethod::kEuler:
      return euler;
    case OdeMethod::kMidpoint:
      return midpoint;
    case OdeMethod::kHeun:
      return heun;
    case OdeMethod::kRk4:
      return rk4;
    case OdeMethod::kHeunEuler:
      return heun_euler;
    case OdeMethod::kBogackiShampine:
      return bosh3;
    case OdeMethod::kDopri5:
      return dopri5;
    case OdeMethod::kDopri8:
      return dop853_tableau();
    case OdeMethod::kExplicitAdams:
    case OdeMethod::kImplicitAdams:
      break;
  }
  TORCH_CHECK(false, "OdeMethod ", ode_method_name(method), " has no Runge-Kutta tableau");
}

// y + h sum_j w_j k_j over the nonzero weights.
torch::Tensor combine(const torch::Tensor& y, double h, const std::vector<double>& w,
                      const std::vector<torch::Tensor>& k) {
  torch::Tensor out = y;
  for (size_t j = 0; j < w.size() && j < k.size(); ++j)
    if (w[j] != 0.0) out = out.add(k[j], h * w[j]);
  return out;
}

// RMS norm over every element, in double.
double rms(const torch::Tensor& v) {
  return std::sqrt(v.to(torch::kDouble).pow(2).mean().item<double>());
}

// One step of an explicit tableau from (t, y) with k[0] = f(t, y) given.
// Fills k[1..] (for FSAL pairs the last one is f(t + h, y_new)) and returns
// y_new; adds the evaluations made to *nfe.
torch::Tensor rk_step(const OdeFn& f, const Tableau& tab, double t, const torch::Tensor& y,
                      double h, std::vector<torch::Tensor>& k, int64_t* nfe) {
  const size_t stages = tab.c.size();
  k.resize(stages);
  const size_t explicit_stages = tab.fsal ? stages - 1 : stages;
  for (size_t i = 1; i < explicit_stages; ++i) {
    k[i] = f(t + tab.c[i] * h, combine(y, h, tab.a[i], k));
    ++*nfe;
  }
  auto y_new = combine(y, h, tab.b, k);
  if (tab.fsal) {
    k[stages - 1] = f(t + h, y_new);
    ++*nfe;
  }
  return y_new;
}

// scipy select_initial_step: Hairer, Norsett & Wanner I, II.4, p. 169.
double initial_step(const OdeFn& f, double t0, const torch::Tensor& y0, const torch::Tensor& f0,
                    double t1, int error_order, double rtol, double atol, int64_t* nfe) {
  const double interval = std::abs(t1 - t0);
  const double direction = t1 > t0 ? 1.0 : -1.0;
  auto scale = atol + y0.abs() * rtol;
  const double d0 = rms(y0 / scale);
  const double d1 = rms(f0 / scale);
  double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  h0 = std::min(h0, interval);
  auto y1 = y0.add(f0, h0 * direction);
  auto f1 = f(t0 + h0 * direction, y1);
  ++*nfe;
  const double d2 = rms((f1 - f0) / scale) / h0;
  const double h1 = (d1 <= 1e-15 && d2 <= 1e-15)
                        ? std::max(1e-6, h0 * 1e-3)
                        : std::pow(0.01 / std::max(d1, d2), 1.0 / (error_order + 1));
  return std::min({100 * h0, h1, interval});
}

OdeResult solve_fixed(const OdeFn& f, const torch::Tensor& y0, double t0, double t1,
                      const OdeOptions& o) {
  SCORCH_CHECK(o.num_steps >= 1, "ODE solver ", ode_method_name(o.method),
               ": num_steps=", o.num_steps, " must be >= 1");
  const Tableau& tab = tableau(o.method);
  OdeResult r;
  const double h = (t1 - t0) / static_cast<double>(o.num_steps);
  torch::Tensor y = y0;
  std::vector<torch::Tensor> k;
  for (int64_t n = 0; n < o.num_steps; ++n) {
    const double t = t0 + static_cast<double>(n) * h;
    k.assign(1, f(t, y));
    ++r.nfe;
    y = rk_step(f, tab, t, y, h, k, &r.nfe);
  }
  r.y = y;
  r.steps = o.num_steps;
  return r;
}

OdeResult solve_adaptive(const OdeFn& f, const torch::Tensor& y0, double t0, double t1,
                         const OdeOptions& o) {
  const char* name = ode_method_name(o.method);
  SCORCH_CHECK(o.rtol >= 0 && o.atol >= 0 && o.rtol + o.atol > 0, "ODE solver ", name,
               ": rtol=", o.rtol, " and atol=", o.atol, " must be >= 0 and not both 0");
  SCORCH_CHECK(o.first_step >= 0 && std::isfinite(o.first_step), "ODE solver ", name,
               ": first_step=", o.first_step, " must be >= 0 (0 chooses it automatically)");
  SCORCH_CHECK(o.max_steps >= 1, "ODE solver ", name, ": max_steps=", o.max_steps, " must be >= 1");
  const Tableau& tab = tableau(o.method);
  const double direction = t1 > t0 ? 1.0 : -1.0;
  const double exponent = -1.0 / (tab.error_order + 1);
  OdeResult r;

  double t = t0;
  torch::Tensor y = y0;
  std::vector<torch::Tensor> k{f(t, y)};
  ++r.nfe;
  double h_abs = o.first_step > 0
                     ? std::min(o.first_step, std::abs(t1 - t0))
                     : initial_step(f, t0, y0, k[0], t1, tab.error_order, o.rtol, o.atol, &r.nfe);
  bool have_k0 = true;  // k[0] == f(t, y)

  while (direction * (t1 - t) > 0) {
    // Ten ulps of t: below this t + h == t in floating point (scipy's min_step).
    const double min_step =
        10 * std::abs(std::nextafter(t, direction * std::numeric_limits<double>::infinity()) - t);
    h_abs = std::max(h_abs, min_step);
    if (!have_k0) {  // non-FSAL pairs evaluate f at the new point here
      k.assign(1, f(t, y));
      ++r.nfe;
      have_k0 = true;
    }
    bool rejected = false;
    while (true) {
      SCORCH_CHECK(h_abs >= min_step, "ODE solver ", name, ": step size underflow at t=", t,
                   " (rtol=", o.rtol, ", atol=", o.atol,
                   "); the drift is probably not finite or too stiff");
      SCORCH_CHECK(r.steps + r.rejected < o.max_steps, "ODE solver ", name,
                   ": max_steps=", o.max_steps, " exceeded at t=", t, " of [", t0, ", ", t1,
                   "] (rtol=", o.rtol, ", atol=", o.atol,
                   "); loosen the tolerances or raise max_steps");
      double t_new = t + direction * h_abs;
      if (direction * (t_new - t1) > 0) t_new = t1;
      const double h = t_new - t;
      h_abs = std::abs(h);
      std::vector<torch::Tensor> stages = k;
      stages.resize(1);
      auto y_new = rk_step(f, tab, t, y, h, stages, &r.nfe);
      auto scale = o.atol + torch::maximum(y.abs(), y_new.abs()) * o.rtol;
      const double error_norm =
          tab.e3.empty() ? rms(combine(torch::zeros_like(y), h, tab.e, stages) / scale)
                         : dop853_error_norm(h, stages, scale);
      SCORCH_CHECK(std::isfinite(error_norm), "ODE solver ", name,
                   ": the drift is not finite near t=", t);
      if (error_norm < 1) {
        double factor = error_norm == 0
                            ? kMaxFactor
                            : std::min(kMaxFactor, kSafety * std::pow(error_norm, exponent));
        if (rejected) factor = std::min(1.0, factor);
        h_abs *= factor;
        ++r.steps;
        t = t_new;
        y = y_new;
        if (tab.fsal) {
          k.assign(1, stages.back());
        } else {
          have_k0 = false;
        }
        break;
      }
      h_abs *= std::max(kMinFactor, kSafety * std::pow(error_norm, exponent));
      rejected = true;
      ++r.rejected;
    }
  }
  r.y = y;
  return r;
}

}  // namespace

OdeMethod ode_method_from_name(const std::string& name) {
  return parse_choice<OdeMethod>(name, "sampling.ode_method");
}

const char* ode_method_name(OdeMethod method) { return choice_name(method); }

bool is_adaptive(OdeMethod method) {
  return method == OdeMethod::kHeunEuler || method == OdeMethod::kBogackiShampine ||
         method == OdeMethod::kDopri5 || method == OdeMethod::kDopri8;
}

OdeResult ode_solve(const OdeFn& f, const torch::Tensor& y0, double t0, double t1,
                    const OdeOptions& options) {
  SCORCH_CHECK(std::isfinite(t0) && std::isfinite(t1), "ODE solver ",
               ode_method_name(options.method), ": times t0=", t0, ", t1=", t1, " must be finite");
  if (t0 == t1) {
    OdeResult r;
    r.y = y0;
    return r;
  }
  if (options.method == OdeMethod::kExplicitAdams || options.method == OdeMethod::kImplicitAdams)
    return adams_solve(f, y0, t0, t1, options);
  return is_adaptive(options.method) ? solve_adaptive(f, y0, t0, t1, options)
                                     : solve_fixed(f, y0, t0, t1, options);
}

}  // namespace scorch
