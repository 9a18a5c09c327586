// The fixed-step Adams methods against closed forms: the global error falls
// by 2^p at each halving of the step (p = 4 for explicit_adams, 5 for
// implicit_adams, with the corrector iterated to convergence or applied once),
// every evaluation of f is counted, fewer than four steps are plain RK4 steps,
// and both agree with RK4 and DOPRI5 on a nonlinear problem.
#include "sampling/adams.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
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

// f wrapped to count its calls independently of the solver's bookkeeping.
struct Counted {
  OdeFn f;
  int64_t* calls;
  torch::Tensor operator()(double t, const torch::Tensor& y) const {
    ++*calls;
    return f(t, y);
  }
};

struct AdamsCase {
  const char* name;
  OdeMethod method;
  double tol;  // corrector convergence (implicit only)
  int order;
  int64_t first_steps;  // N: errors at N, 2N, 4N, 8N steps
};

class AdamsOrder : public ::testing::TestWithParam<AdamsCase> {};

// Errors at N, 2N, 4N, 8N steps over [0, 3]: each halving of h divides the
// error by ~2^p, i.e. log2(e_N / e_2N) ~ p, on the forced decay, the rotation,
// and the decay run backwards from its exact end value. The ratios approach p
// from below as the start-up and higher-order terms fade, so the last one is
// held tighter.
TEST_P(AdamsOrder, ErrorRatiosAtStepHalvingsGiveTheOrder) {
  const AdamsCase c = GetParam();
  const double t_end = 3.0;
  const auto rot0 = torch::tensor({{1.0, 0.0}, {0.3, -0.7}}, torch::kDouble);
  std::vector<double> h, err_decay, err_rotation, err_backward;
  for (int64_t n : {c.first_steps, 2 * c.first_steps, 4 * c.first_steps, 8 * c.first_steps}) {
    OdeOptions o;
    o.method = c.method;
    o.num_steps = n;
    o.rtol = o.atol = c.tol;
    h.push_back(t_end / n);
    int64_t calls = 0;
    auto a = ode_solve(Counted{forced_decay, &calls}, scalar_state(1.0), 0.0, t_end, o);
    err_decay.push_back(std::abs(a.y.item<double>() - forced_decay_exact(t_end, 1.0)));
    EXPECT_EQ(a.nfe, calls);
    EXPECT_EQ(a.steps, n);
    // Three RK4 steps (4 evaluations each), then one per Adams-Bashforth step
    // plus 1 to 4 corrections per step for the implicit method.
    if (c.method == OdeMethod::kExplicitAdams) {
      EXPECT_EQ(a.nfe, n + 9);
    } else {
      EXPECT_GE(a.nfe, n + 9 + (n - 3));
      EXPECT_LE(a.nfe, n + 9 + 4 * (n - 3));
    }
    auto b = ode_solve(rotation, rot0, 0.0, t_end, o);
    err_rotation.push_back(max_abs_diff(b.y, rotation_exact(t_end, rot0)));
    auto back =
        ode_solve(forced_decay, scalar_state(forced_decay_exact(t_end, 1.0)), t_end, 0.0, o);
    err_backward.push_back(std::abs(back.y.item<double>() - 1.0));
  }
  for (const auto* errors : {&err_decay, &err_rotation, &err_backward}) {
    std::printf("[ order ] %-14s log2 error ratios:", c.name);
    for (size_t i = 0; i + 1 < errors->size(); ++i) {
      const double ratio = std::log2((*errors)[i] / (*errors)[i + 1]);
      std::printf(" %.3f", ratio);
      EXPECT_NEAR(ratio, c.order, i + 2 < errors->size() ? 0.45 : 0.2)
          << c.name << " halving " << i;
    }
    const double slope = log_log_slope(h, *errors);
    std::printf("; fitted %.3f, expected %d\n", slope, c.order);
    EXPECT_NEAR(slope, c.order, 0.3) << c.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, AdamsOrder,
    ::testing::Values(AdamsCase{"explicit_adams", OdeMethod::kExplicitAdams, 1e-5, 4, 64},
                      // Corrector iterated to (near) convergence: Adams-Moulton.
                      AdamsCase{"implicit_adams", OdeMethod::kImplicitAdams, 1e-13, 5, 32},
                      // A loose tolerance stops after one correction (PECE),
                      // which keeps the corrector's order.
                      AdamsCase{"implicit_pece", OdeMethod::kImplicitAdams, 1e-3, 5, 64}),
    [](const ::testing::TestParamInfo<AdamsCase>& info) {
      return std::string(info.param.name);
    });

TEST(Adams, LooseToleranceCorrectsOncePerStep) {
  OdeOptions o;
  o.method = OdeMethod::kImplicitAdams;
  o.num_steps = 50;
  o.rtol = o.atol = 1e-3;
  auto r = ode_solve(forced_decay, scalar_state(1.0), 0.0, 3.0, o);
  EXPECT_EQ(r.nfe, 3 * 4 + 47 * 2);
}

TEST(Adams, FewerThanFourStepsAreRk4Steps) {
  const auto rot0 = torch::tensor({{1.0, 0.0}, {0.3, -0.7}}, torch::kDouble);
  for (auto method : {OdeMethod::kExplicitAdams, OdeMethod::kImplicitAdams}) {
    for (int64_t n : {1, 2, 3}) {
      OdeOptions o;
      o.method = method;
      o.num_steps = n;
      auto adams = ode_solve(rotation, rot0, 0.0, 1.0, o);
      o.method = OdeMethod::kRk4;
      auto rk4 = ode_solve(rotation, rot0, 0.0, 1.0, o);
      EXPECT_LT(max_abs_diff(adams.y, rk4.y), 1e-15) << ode_method_name(method) << " n=" << n;
      EXPECT_EQ(adams.nfe, 4 * n);
    }
  }
}

TEST(Adams, AgreesWithRk4AndDopri5OnVanDerPol) {
  const auto y0 = torch::tensor({{2.0, 0.0}, {0.5, -1.0}, {-1.0, 1.5}}, torch::kDouble);
  OdeOptions reference;
  reference.method = OdeMethod::kDopri5;
  reference.rtol = reference.atol = 1e-11;
  auto exact = ode_solve(testing::van_der_pol, y0, 0.0, 4.0, reference).y;
  for (auto method : {OdeMethod::kRk4, OdeMethod::kExplicitAdams, OdeMethod::kImplicitAdams}) {
    OdeOptions o;
    o.method = method;
    o.num_steps = 800;
    o.rtol = o.atol = 1e-10;
    const double err = max_abs_diff(ode_solve(testing::van_der_pol, y0, 0.0, 4.0, o).y, exact);
    EXPECT_LT(err, 1e-6) << ode_method_name(method);
    std::printf("[ adams ] van der Pol, 800 steps: |%s - dopri5| %.2e\n", ode_method_name(method),
                err);
  }
}

TEST(Adams, BadOptionsThrow) {
  OdeOptions o;
  o.method = OdeMethod::kExplicitAdams;
  o.num_steps = 0;
  EXPECT_THROW(ode_solve(forced_decay, scalar_state(1.0), 0.0, 1.0, o), Error);
  o.method = OdeMethod::kImplicitAdams;
  o.num_steps = 10;
  o.rtol = o.atol = 0;
  EXPECT_THROW(ode_solve(forced_decay, scalar_state(1.0), 0.0, 1.0, o), Error);
  // The explicit method does not use the tolerances.
  o.method = OdeMethod::kExplicitAdams;
  EXPECT_NO_THROW(ode_solve(forced_decay, scalar_state(1.0), 0.0, 1.0, o));
}

}  // namespace
}  // namespace scorch
