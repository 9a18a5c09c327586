// Butcher tableaux of the explicit Runge-Kutta solvers (ode_solver.h): the
// layout that the fixed-step and adaptive drivers in ode_solver.cpp step with,
// shared with the tableaux that live in their own files (dopri8.h).
#pragma once

#include <vector>

namespace scorch {

// An explicit tableau with s stages. a[i] holds row i of A (i coefficients).
// For FSAL pairs the last stage is f(t + h, y_new): c.back() = 1 and a.back()
// equals b, so the next step reuses it as its first stage.
struct RkTableau {
  std::vector<double> c;               // [s] nodes
  std::vector<std::vector<double>> a;  // [s][i] rows of A
  std::vector<double> b;               // [s] weights of the propagated solution
  // Error weights (adaptive only). Embedded pairs: err = h sum_i e_i k_i and
  // the error norm is RMS(err / scale). With e3 non-empty (DOP853's 8(5,3)),
  // e is the fifth-order estimate and e3 the third-order one, combined as in
  // Hairer's DOP853 (dopri8.h).
  std::vector<double> e;
  std::vector<double> e3;
  bool fsal = false;
  int error_order = 0;  // q: the step size scales the error norm as h^(q+1)
};

}  // namespace scorch
