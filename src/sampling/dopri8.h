// Dormand-Prince 8(5,3): Hairer's DOP853 (Hairer, Norsett & Wanner, Solving
// ODEs I, 2nd ed., II.10; the Fortran DOP853 and scipy's solve_ivp(method=
// "DOP853") share these coefficients and this error estimate). Twelve stages
// of an order-8 method, FSAL (the 13th evaluation, f at the new point, starts
// the next step), with two embedded estimates of orders 5 and 3 combined into
// an error that scales as h^8 (so the controller uses q = 7). Selected as
// OdeMethod::kDopri8 ("dopri8") through ode_solve (ode_solver.h).
//
// torchdiffeq's method of the same name uses a different tableau, Prince &
// Dormand's RK8(7)13M; both are 8th-order Dormand-Prince pairs.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "sampling/rk_tableau.h"

namespace scorch {

// 13 stages (the last is the FSAL evaluation), b = a.back(), e = the fifth-
// order error weights, e3 = the third-order ones, error_order = 7.
const RkTableau& dop853_tableau();

// DOP853's error norm of a step of size h (Hairer's DOP853; scipy DOP853.
// _estimate_error_norm): with err5 = sum_i e_i k_i / scale and err3 =
// sum_i e3_i k_i / scale over all n elements of the state,
//   |h| ||err5||^2 / sqrt(n (||err5||^2 + 0.01 ||err3||^2))   (0 when both vanish).
// REQUIRES: k holds the 13 stages of the step, scale = atol + rtol max(|y|, |y_new|),
// all of y's shape.
double dop853_error_norm(double h, const std::vector<torch::Tensor>& k,
                         const torch::Tensor& scale);

}  // namespace scorch
