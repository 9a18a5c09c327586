// ODE solvers for dy/dt = f(t, y) on tensors, integrating from t0 to t1
// (either direction): the set of torchdiffeq. Fixed-step Runge-Kutta: Euler
// (order 1), midpoint (2), Heun (2), RK4 (4); fixed-step Adams: explicit (4-step
// Adams-Bashforth, order 4) and implicit (Adams-Bashforth-Moulton, order 5),
// adams.h. Adaptive embedded pairs with error control
// ||err / (atol + rtol max(|y|, |y_new|))||_rms <= 1 (Hairer, Norsett &
// Wanner I, II.4): Heun-Euler 2(1), Bogacki-Shampine 3(2), Dormand-Prince 5(4)
// (the method of scipy's RK45, which score_sde uses) and Dormand-Prince 8(5,3)
// (Hairer's DOP853, scipy's DOP853; dopri8.h).
//
//   OdeOptions o;  o.method = OdeMethod::kDopri5;  o.rtol = o.atol = 1e-5;
//   auto r = ode_solve([](double t, const torch::Tensor& y) { return -y; }, y0, 0.0, 1.0, o);
//   // r.y ~ y0 * exp(-1), r.nfe evaluations of f
#pragma once

#include "core/choices.h"
#include <torch/torch.h>

#include <functional>
#include <string>

namespace scorch {


// "euler" | "midpoint" | "heun" | "rk4" | "explicit_adams" | "implicit_adams" |
// "heun_euler" | "bosh3" | "dopri5" | "dopri8"; throws scorch::Error.
OdeMethod ode_method_from_name(const std::string& name);
const char* ode_method_name(OdeMethod method);
bool is_adaptive(OdeMethod method);

struct OdeOptions {
  OdeMethod method = OdeMethod::kDopri5;
  int64_t num_steps = 100;  // fixed-step methods: equal steps from t0 to t1
  double rtol = 1e-5;       // adaptive methods; implicit_adams: corrector convergence
  double atol = 1e-5;
  double first_step = 0;    // adaptive: 0 = chosen automatically (Hairer's rule)
  int64_t max_steps = 100000;  // adaptive: accepted + rejected steps before giving up
};

// f(t, y) -> dy/dt, same shape and dtype as y.
using OdeFn = std::function<torch::Tensor(double t, const torch::Tensor& y)>;

struct OdeResult {
  torch::Tensor y;         // state at t1
  int64_t nfe = 0;         // evaluations of f
  int64_t steps = 0;       // accepted steps
  int64_t rejected = 0;    // rejected steps (adaptive)
};

// Integrates from t0 to t1. The error norm of adaptive methods is taken over
// the whole state tensor. Throws scorch::Error if max_steps is exceeded or
// the step size underflows (naming the method, t and the tolerances).
OdeResult ode_solve(const OdeFn& f, const torch::Tensor& y0, double t0, double t1,
                    const OdeOptions& options);

}  // namespace scorch
