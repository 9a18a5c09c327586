// Linear multistep Adams methods on a fixed grid of equal steps (Hairer,
// Norsett & Wanner, Solving ODEs I, III.1; torchdiffeq's "explicit_adams" and
// "implicit_adams"), selected as OdeMethod::kExplicitAdams / kImplicitAdams
// through ode_solve (ode_solver.h). With f_j = f(t_j, y_j) and step h:
//   explicit_adams, 4-step Adams-Bashforth (order 4):
//     y_{n+1} = y_n + h/24 (55 f_n - 59 f_{n-1} + 37 f_{n-2} - 9 f_{n-3})
//   implicit_adams, that predictor corrected by the 4-step Adams-Moulton
//   formula (order 5, the corrector torchdiffeq pairs with it):
//     y_{n+1} = y_n + h/720 (251 f(t_{n+1}, y_{n+1}) + 646 f_n - 264 f_{n-1}
//                           + 106 f_{n-2} - 19 f_{n-3})
//   solved by functional iteration: up to 4 corrections (torchdiffeq's
//   max_iters), stopping once successive iterates differ by less than
//   atol + rtol max(|y'|, |y''|) in every element; the last iterate is kept.
// The first three steps, before four derivatives exist, are classical RK4
// steps: a fixed number of local errors O(h^5), which keeps global order 4
// (explicit) and 5 (implicit). Evaluations of f: 4 per RK4 step, then 1 per
// Adams-Bashforth step (N + 9 for N >= 3 steps), plus 1 per correction.
#pragma once

#include <torch/torch.h>

#include "sampling/ode_solver.h"

namespace scorch {

// Integrates dy/dt = f(t, y) from t0 to t1 (t0 != t1, either direction) in
// options.num_steps equal steps. REQUIRES: options.method is kExplicitAdams or
// kImplicitAdams. Throws scorch::Error for num_steps < 1, or (implicit) for
// tolerances that are negative or both zero.
OdeResult adams_solve(const OdeFn& f, const torch::Tensor& y0, double t0, double t1,
                      const OdeOptions& options);

}  // namespace scorch
