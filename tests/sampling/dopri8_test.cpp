// DOP853 (dopri8) against closed forms: at a tight tolerance it reproduces the
// exact solution both ways with fewer evaluations than DOPRI5, the global error
// follows the tolerance, the error of one step falls as h^9 (an 8th-order
// method), and it agrees with DOPRI5 and fine-step RK4 on a nonlinear problem.
// Its step-size control is checked step for step against scipy's DOP853 in
// ode_solver_test.cpp.
#include "sampling/dopri8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sampling/ode_solver.h"
#include "testing/fit.h"
#include "testing/ode_problems.h"

namespace scorch {
namespace {

using testing::forced_decay;
using testing::forced_decay_exact;
using testing::log_log_slope;
using testing::max_abs_diff;
using testing::rotation;
using testing::rotation_exact;
using testing::scalar_state;

OdeOptions adaptive(OdeMethod method, double tol) {
  OdeOptions o;
  o.method = method;
  o.rtol = o.atol = tol;
  return o;
}

TEST(Dopri8, TightToleranceMatchesClosedFormBothWays) {
  const auto rot0 = torch::tensor({{1.0, 0.0}, {0.3, -0.7}}, torch::kDouble);
  const auto o8 = adaptive(OdeMethod::kDopri8, 1e-12);
  const auto o5 = adaptive(OdeMethod::kDopri5, 1e-12);
  auto r = ode_solve(rotation, rot0, 0.0, 10.0, o8);
  const double err_rotation = max_abs_diff(r.y, rotation_exact(10.0, rot0));
  EXPECT_LT(err_rotation, 1e-10);
  auto back = ode_solve(rotation, rotation_exact(10.0, rot0), 10.0, 0.0, o8);
  EXPECT_LT(max_abs_diff(back.y, rot0), 1e-10);
  auto d = ode_solve(forced_decay, scalar_state(1.0), 0.0, 5.0, o8);
  const double err_decay = std::abs(d.y.item<double>() - forced_decay_exact(5.0, 1.0));
  EXPECT_LT(err_decay, 1e-11);
  // An 8th-order method needs far fewer evaluations at this tolerance.
  auto r5 = ode_solve(rotation, rot0, 0.0, 10.0, o5);
  EXPECT_LT(2 * r.nfe, r5.nfe);
  std::printf("[ dopri8] tol 1e-12: rotation error %.2e (%lld nfe; dopri5 %lld nfe), decay %.2e\n",
              err_rotation, static_cast<long long>(r.nfe), static_cast<long long>(r5.nfe),
              err_decay);
}

// The global error of a tolerance-controlled solve is proportional to the
// tolerance (Hairer, Norsett & Wanner I, II.4): log error against log tol has
// slope ~1 and the error stays within a small multiple of the tolerance.
TEST(Dopri8, ErrorFollowsTheTolerance) {
  const auto rot0 = torch::tensor({{1.0, 0.0}, {0.3, -0.7}}, torch::kDouble);
  std::vector<double> tols{1e-4, 1e-6, 1e-8, 1e-10}, errors;
  int64_t previous_nfe = 0;
  for (double tol : tols) {
    auto r = ode_solve(rotation, rot0, 0.0, 10.0, adaptive(OdeMethod::kDopri8, tol));
    const double err = max_abs_diff(r.y, rotation_exact(10.0, rot0));
    errors.push_back(err);
    EXPECT_LT(err, 10 * tol) << "tol " << tol;
    EXPECT_GT(r.nfe, previous_nfe) << "tol " << tol;
    previous_nfe = r.nfe;
    std::printf("[ dopri8] tol %.0e: error %.2e, %lld nfe\n", tol, err,
                static_cast<long long>(r.nfe));
  }
  const double slope = log_log_slope(tols, errors);
  EXPECT_GT(slope, 0.7);
  EXPECT_LT(slope, 1.3);
  std::printf("[ dopri8] error against tolerance slope %.3f; expected ~1\n", slope);
}

// One step of size h from t = 0 (first_step = h, tolerances so loose that it
// is accepted): the local error of an order-8 method is O(h^9).
TEST(Dopri8, OneStepErrorFallsAsHToTheNinth) {
  const auto rot0 = torch::tensor({1.0, 0.5}, torch::kDouble);
  std::vector<double> hs{0.8, 0.6, 0.4, 0.3}, errors;
  for (double h : hs) {
    auto o = adaptive(OdeMethod::kDopri8, 1e6);
    o.first_step = h;
    auto r = ode_solve(rotation, rot0, 0.0, h, o);
    ASSERT_EQ(r.steps, 1);
    errors.push_back(max_abs_diff(r.y, rotation_exact(h, rot0)));
  }
  const double slope = log_log_slope(hs, errors);
  EXPECT_NEAR(slope, 9.0, 0.3);  // scipy's DOP853 on the same steps: 9.06
  std::printf("[ order ] dopri8 one-step error slope %.3f; expected 9\n", slope);
}

TEST(Dopri8, AgreesWithDopri5AndRk4OnVanDerPol) {
  const auto y0 = torch::tensor({{2.0, 0.0}, {0.5, -1.0}, {-1.0, 1.5}}, torch::kDouble);
  auto r8 = ode_solve(testing::van_der_pol, y0, 0.0, 4.0, adaptive(OdeMethod::kDopri8, 1e-11));
  auto r5 = ode_solve(testing::van_der_pol, y0, 0.0, 4.0, adaptive(OdeMethod::kDopri5, 1e-11));
  OdeOptions rk4;
  rk4.method = OdeMethod::kRk4;
  rk4.num_steps = 4000;
  auto r4 = ode_solve(testing::van_der_pol, y0, 0.0, 4.0, rk4);
  EXPECT_LT(max_abs_diff(r8.y, r5.y), 1e-8);
  EXPECT_LT(max_abs_diff(r8.y, r4.y), 1e-9);
  std::printf("[ dopri8] van der Pol: |dopri8 - dopri5| %.2e, |dopri8 - rk4| %.2e\n",
              max_abs_diff(r8.y, r5.y), max_abs_diff(r8.y, r4.y));
}

TEST(Dopri8, TableauIsConsistent) {
  // Row sums of A equal c, and b sums to 1 (order conditions 1 and the
  // simplifying assumption); the error weights of both estimates sum to 0.
  const RkTableau& t = dop853_tableau();
  ASSERT_EQ(t.c.size(), 13u);
  ASSERT_EQ(t.a.size(), 13u);
  for (size_t i = 0; i < t.a.size(); ++i) {
    double row = 0;
    for (double v : t.a[i]) row += v;
    EXPECT_NEAR(row, t.c[i], 1e-14) << "row " << i;
  }
  double sum_b = 0, sum_e = 0, sum_e3 = 0, b_c7 = 0;
  for (size_t i = 0; i < t.b.size(); ++i) {
    sum_b += t.b[i];
    sum_e += t.e[i];
    sum_e3 += t.e3[i];
    b_c7 += t.b[i] * std::pow(t.c[i], 7);
  }
  EXPECT_NEAR(sum_b, 1.0, 1e-14);
  EXPECT_NEAR(sum_e, 0.0, 1e-14);
  EXPECT_NEAR(sum_e3, 0.0, 1e-14);
  EXPECT_NEAR(b_c7, 1.0 / 8, 1e-14);  // quadrature order 8: sum b_i c_i^7 = 1/8
}

}  // namespace
}  // namespace scorch
