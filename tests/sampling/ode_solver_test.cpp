// The Runge-Kutta solvers against problems with closed-form solutions: the
// global error of each fixed-step method falls as h^p (p its order), the
// embedded error estimate of each adaptive pair as h^(q+1) (q the order of the
// lower-order solution), adaptive solves meet their tolerance in both
// directions, every evaluation of f is counted, and the step-size controller
// takes exactly the steps scipy's solve_ivp does (numbers dumped from scipy),
// DOP853 (dopri8) included. The Adams methods and DOP853's accuracy have their
// own tests (adams_test.cpp, dopri8_test.cpp).
#include "sampling/ode_solver.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "testing/fit.h"
#include "core/error.h"

namespace scorch {
namespace {

// dy/dt = -y + sin t, y(0) = y0: y(t) = (y0 + 1/2) e^-t + (sin t - cos t) / 2.
torch::Tensor forced_decay(double t, const torch::Tensor& y) { return -y + std::sin(t); }
double forced_decay_exact(double t, double y0) {
  return (y0 + 0.5) * std::exp(-t) + (std::sin(t) - std::cos(t)) / 2;
}

// dy/dt = [[0, -1], [1, 0]] y on y [..., 2]: rotation by angle t.
torch::Tensor rotation(double, const torch::Tensor& y) {
  return torch::stack({-y.select(-1, 1), y.select(-1, 0)}, -1);
}
torch::Tensor rotation_exact(double t, const torch::Tensor& y0) {
  const double c = std::cos(t), s = std::sin(t);
  return torch::stack(
      {c * y0.select(-1, 0) - s * y0.select(-1, 1), s * y0.select(-1, 0) + c * y0.select(-1, 1)},
      -1);
}

using testing::log_log_slope;

torch::Tensor scalar(double v) { return torch::full({1}, v, torch::kDouble); }

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

struct FixedCase {
  OdeMethod method;
  int order;
  int stages;
};

class FixedStep : public ::testing::TestWithParam<FixedCase> {};

TEST_P(FixedStep, GlobalErrorFallsAsHToTheOrder) {
  const FixedCase c = GetParam();
  // t_end = 3: at t = 2 the leading RK4 error terms of the forced decay nearly
  // cancel, which hides the asymptotic slope behind the next order.
  const double t_end = 3.0;
  const std::vector<int64_t> step_counts{32, 64, 128, 256};
  std::vector<double> h, err_decay, err_rotation, err_backward;
  const auto rot0 = torch::tensor({{1.0, 0.0}, {0.3, -0.7}}, torch::kDouble);
  for (int64_t n : step_counts) {
    OdeOptions o;
    o.method = c.method;
    o.num_steps = n;
    h.push_back(t_end / n);
    auto a = ode_solve(forced_decay, scalar(1.0), 0.0, t_end, o);
    err_decay.push_back(std::abs(a.y.item<double>() - forced_decay_exact(t_end, 1.0)));
    EXPECT_EQ(a.nfe, n * c.stages);
    EXPECT_EQ(a.steps, n);
    auto b = ode_solve(rotation, rot0, 0.0, t_end, o);
    err_rotation.push_back(max_abs_diff(b.y, rotation_exact(t_end, rot0)));
    // Backwards from the exact y(t_end) to t = 0.
    auto back = ode_solve(forced_decay, scalar(forced_decay_exact(t_end, 1.0)), t_end, 0.0, o);
    err_backward.push_back(std::abs(back.y.item<double>() - 1.0));
  }
  const double s_decay = log_log_slope(h, err_decay);
  const double s_rotation = log_log_slope(h, err_rotation);
  const double s_backward = log_log_slope(h, err_backward);
  EXPECT_NEAR(s_decay, c.order, 0.3) << ode_method_name(c.method);
  EXPECT_NEAR(s_rotation, c.order, 0.3) << ode_method_name(c.method);
  EXPECT_NEAR(s_backward, c.order, 0.3) << ode_method_name(c.method);
  std::printf("[ order ] %-8s fitted %.3f (decay) %.3f (rotation) %.3f (backwards); expected %d\n",
              ode_method_name(c.method), s_decay, s_rotation, s_backward, c.order);
}

INSTANTIATE_TEST_SUITE_P(All, FixedStep,
                         ::testing::Values(FixedCase{OdeMethod::kEuler, 1, 1},
                                           FixedCase{OdeMethod::kMidpoint, 2, 2},
                                           FixedCase{OdeMethod::kHeun, 2, 2},
                                           FixedCase{OdeMethod::kRk4, 4, 4}),
                         [](const ::testing::TestParamInfo<FixedCase>& info) {
                           return std::string(ode_method_name(info.param.method));
                         });

struct AdaptiveCase {
  OdeMethod method;
  int error_order;  // q: order of the embedded lower-order solution
  int stages;       // evaluations per attempted step after the first
  bool fsal;
};

class Adaptive : public ::testing::TestWithParam<AdaptiveCase> {};

// f wrapped to count its calls independently of the solver's bookkeeping.
struct Counted {
  OdeFn f;
  int64_t* calls;
  torch::Tensor operator()(double t, const torch::Tensor& y) const {
    ++*calls;
    return f(t, y);
  }
};

TEST_P(Adaptive, MeetsToleranceBothWaysAndCountsEveryEvaluation) {
  const AdaptiveCase c = GetParam();
  OdeOptions o;
  o.method = c.method;
  o.rtol = o.atol = 1e-6;
  const auto rot0 = torch::tensor({{1.0, 0.0}, {0.3, -0.7}}, torch::kDouble);
  int64_t calls = 0;
  auto r = ode_solve(Counted{rotation, &calls}, rot0, 0.0, 3.0, o);
  EXPECT_LT(max_abs_diff(r.y, rotation_exact(3.0, rot0)), 1e-4);
  EXPECT_EQ(r.nfe, calls);
  // Evaluations: f(t0), one for Hairer's initial step, then per attempted
  // step `stages` (FSAL: the last is f at the new point, reused by the next
  // step) or, without FSAL, one stage per attempt plus f at each new point.
  const int64_t expected =
      c.fsal ? 2 + c.stages * (r.steps + r.rejected) : 1 + 2 * r.steps + r.rejected;
  EXPECT_EQ(r.nfe, expected);

  // Backwards, on the rotation (which does not amplify errors as the decay
  // does when run backwards, by e^3 here).
  calls = 0;
  auto back = ode_solve(Counted{rotation, &calls}, rotation_exact(3.0, rot0), 3.0, 0.0, o);
  EXPECT_LT(max_abs_diff(back.y, rot0), 1e-4);
  EXPECT_EQ(back.nfe, calls);

  // A given first step replaces Hairer's rule and its evaluation.
  o.first_step = 0.01;
  calls = 0;
  auto given = ode_solve(Counted{forced_decay, &calls}, scalar(1.0), 0.0, 3.0, o);
  EXPECT_EQ(given.nfe, calls);
  EXPECT_EQ(given.nfe, c.fsal ? 1 + c.stages * (given.steps + given.rejected)
                              : 2 * given.steps + given.rejected);
  std::printf(
      "[ nfe   ] %-10s rotation rtol=atol=1e-6: %lld steps, %lld rejected, %lld nfe, "
      "error %.2e\n",
      ode_method_name(c.method), static_cast<long long>(r.steps),
      static_cast<long long>(r.rejected), static_cast<long long>(r.nfe),
      max_abs_diff(r.y, rotation_exact(3.0, rot0)));
}

TEST_P(Adaptive, LooserToleranceTakesFewerEvaluations) {
  const AdaptiveCase c = GetParam();
  int64_t previous = 0;
  double previous_error = 0;
  for (double tol : {1e-7, 1e-5, 1e-3}) {
    OdeOptions o;
    o.method = c.method;
    o.rtol = o.atol = tol;
    auto r = ode_solve(forced_decay, scalar(1.0), 0.0, 5.0, o);
    const double err = std::abs(r.y.item<double>() - forced_decay_exact(5.0, 1.0));
    if (previous > 0) {
      EXPECT_LT(r.nfe, previous) << "tol " << tol;
      EXPECT_GT(err, previous_error) << "tol " << tol;
    }
    EXPECT_LT(err, 100 * tol) << "tol " << tol;
    previous = r.nfe;
    previous_error = err;
  }
}

// The error estimate of one step from (0, 1) with step h equals the absolute
// tolerance at which that step is just accepted (rtol = 0, one element, so the
// RMS norm is |err| / atol). Bisecting that threshold for several h measures
// the estimate, which must scale as h^(q+1).
TEST_P(Adaptive, EmbeddedErrorEstimateHasItsOrder) {
  const AdaptiveCase c = GetParam();
  std::vector<double> hs{0.4, 0.2, 0.1, 0.05}, estimates;
  for (double h : hs) {
    // DOP853's estimate at h = 0.05 is ~5e-18 (h^8), below the other pairs'.
    double lo = std::log(1e-30), hi = std::log(1.0);
    for (int it = 0; it < 60; ++it) {
      const double mid = 0.5 * (lo + hi);
      OdeOptions o;
      o.method = c.method;
      o.rtol = 0;
      o.atol = std::exp(mid);
      o.first_step = h;
      o.max_steps = 1;  // a rejected first step throws instead of going on
      bool accepted = true;
      try {
        ode_solve(forced_decay, scalar(1.0), 0.0, h, o);
      } catch (const Error&) {
        accepted = false;
      }
      (accepted ? hi : lo) = mid;
    }
    estimates.push_back(std::exp(hi));
  }
  const double slope = log_log_slope(hs, estimates);
  EXPECT_NEAR(slope, c.error_order + 1, 0.3) << ode_method_name(c.method);
  std::printf("[ order ] %-10s error estimate slope %.3f; expected %d\n", ode_method_name(c.method),
              slope, c.error_order + 1);
}

TEST_P(Adaptive, MaxStepsExceededThrows) {
  const AdaptiveCase c = GetParam();
  OdeOptions o;
  o.method = c.method;
  o.rtol = o.atol = 1e-10;
  o.max_steps = 5;
  EXPECT_THROW(ode_solve(rotation, torch::tensor({1.0, 0.0}, torch::kDouble), 0.0, 10.0, o), Error);
}

INSTANTIATE_TEST_SUITE_P(All, Adaptive,
                         ::testing::Values(AdaptiveCase{OdeMethod::kHeunEuler, 1, 1, false},
                                           AdaptiveCase{OdeMethod::kBogackiShampine, 2, 3, true},
                                           AdaptiveCase{OdeMethod::kDopri5, 4, 6, true},
                                           // DOP853: the 8(5,3) error norm scales as h^8.
                                           AdaptiveCase{OdeMethod::kDopri8, 7, 12, true}),
                         [](const ::testing::TestParamInfo<AdaptiveCase>& info) {
                           return std::string(ode_method_name(info.param.method));
                         });

// dy/dt = -20 (y - cos t): quickly attracted to ~cos t, with rejected steps.
torch::Tensor relaxation(double t, const torch::Tensor& y) { return -20 * (y - std::cos(t)); }

struct ScipyCase {
  const char* name;
  OdeMethod method;
  OdeFn f;
  std::vector<double> y0;
  double t0, t1, tol;
  int64_t nfev, steps;  // solve_ivp's nfev and len(t) - 1
  std::vector<double> y1;
  double y1_tol = 1e-12;  // same steps; the sums of stages round differently from numpy's dot
};

// Reference: scipy 1.10.1 solve_ivp(f, (t0, t1), y0, method=RK23|RK45|DOP853,
// rtol=tol, atol=tol) on the flattened state, reporting sol.nfev,
// len(sol.t) - 1 and sol.y[:, -1]. Same steps, rejections and evaluations.
TEST(OdeSolver, TakesTheStepsOfScipySolveIvp) {
  const std::vector<ScipyCase> cases{
      {"rk23_rotation",
       OdeMethod::kBogackiShampine,
       rotation,
       {1.0, 0.0, 0.3, -0.7},
       0,
       3,
       1e-6,
       221,
       73,
       {-0.9899831427021581, 0.14111834798887535, -0.19821209921843466, 0.7353237042881735}},
      {"rk45_rotation",
       OdeMethod::kDopri5,
       rotation,
       {1.0, 0.0, 0.3, -0.7},
       0,
       3,
       1e-6,
       74,
       12,
       {-0.9899913847459006, 0.14111922130118337, -0.1982139605129418, 0.7353297357124857}},
      {"rk23_decay_backwards",
       OdeMethod::kBogackiShampine,
       forced_decay,
       {0.2},
       3,
       0,
       1e-3,
       32,
       10,
       {-7.793785513766666}},
      {"rk45_decay_backwards",
       OdeMethod::kDopri5,
       forced_decay,
       {0.2},
       3,
       0,
       1e-6,
       80,
       13,
       {-7.842400015257742}},
      {"rk23_relaxation_1e-2",
       OdeMethod::kBogackiShampine,
       relaxation,
       {2.0},
       0,
       4,
       1e-2,
       125,
       34,
       {-0.6977884747842115}},
      {"rk45_relaxation_1e-2",
       OdeMethod::kDopri5,
       relaxation,
       {2.0},
       0,
       4,
       1e-2,
       176,
       25,
       {-0.7022887746457944}},
      {"rk45_relaxation_1e-6",
       OdeMethod::kDopri5,
       relaxation,
       {2.0},
       0,
       4,
       1e-6,
       596,
       96,
       {-0.6897589556902582}},
      {"dop853_rotation",
       OdeMethod::kDopri8,
       rotation,
       {1.0, 0.0, 0.3, -0.7},
       0,
       3,
       1e-6,
       50,
       4,
       {-0.9899923172282206, 0.1411202996277351, -0.1982134854290517, 0.7353307119480731}},
      {"dop853_rotation_1e-10",
       OdeMethod::kDopri8,
       rotation,
       {1.0, 0.0, 0.3, -0.7},
       0,
       3,
       1e-10,
       122,
       10,
       {-0.9899924965873012, 0.14112000810759284, -0.19821374330087482, 0.7353307500433891}},
      {"dop853_decay_backwards",
       OdeMethod::kDopri8,
       forced_decay,
       {0.2},
       3,
       0,
       1e-6,
       74,
       5,
       {-7.842390642074201}},
      {"dop853_relaxation_1e-2",
       OdeMethod::kDopri8,
       relaxation,
       {2.0},
       0,
       4,
       1e-2,
       218,
       14,
       {-0.6895985684425163},
       1e-11},  // h lambda near DOP853's stability boundary amplifies rounding
      {"dop853_relaxation_1e-6",
       OdeMethod::kDopri8,
       relaxation,
       {2.0},
       0,
       4,
       1e-6,
       518,
       42,
       {-0.6897593257819232}},
  };
  for (const auto& c : cases) {
    OdeOptions o;
    o.method = c.method;
    o.rtol = o.atol = c.tol;
    auto y0 = torch::tensor(c.y0, torch::kDouble);
    if (c.y0.size() == 4) y0 = y0.view({2, 2});
    auto r = ode_solve(c.f, y0, c.t0, c.t1, o);
    EXPECT_EQ(r.nfe, c.nfev) << c.name;
    EXPECT_EQ(r.steps, c.steps) << c.name;
    EXPECT_LT(max_abs_diff(r.y.flatten(), torch::tensor(c.y1, torch::kDouble)), c.y1_tol)
        << c.name;
  }
}

TEST(OdeSolver, NamesRoundTripAndUnknownNameThrows) {
  for (auto m : {OdeMethod::kEuler, OdeMethod::kMidpoint, OdeMethod::kHeun, OdeMethod::kRk4,
                 OdeMethod::kExplicitAdams, OdeMethod::kImplicitAdams, OdeMethod::kHeunEuler,
                 OdeMethod::kBogackiShampine, OdeMethod::kDopri5, OdeMethod::kDopri8})
    EXPECT_EQ(ode_method_from_name(ode_method_name(m)), m);
  EXPECT_THROW(ode_method_from_name("rk45"), Error);
  EXPECT_FALSE(is_adaptive(OdeMethod::kRk4));
  EXPECT_TRUE(is_adaptive(OdeMethod::kDopri5));
  EXPECT_TRUE(is_adaptive(OdeMethod::kDopri8));
  EXPECT_FALSE(is_adaptive(OdeMethod::kExplicitAdams));
  EXPECT_FALSE(is_adaptive(OdeMethod::kImplicitAdams));
}

TEST(OdeSolver, BadOptionsAndNonFiniteDriftThrow) {
  OdeOptions o;
  o.method = OdeMethod::kRk4;
  o.num_steps = 0;
  EXPECT_THROW(ode_solve(forced_decay, scalar(1.0), 0.0, 1.0, o), Error);
  o.method = OdeMethod::kDopri5;
  o.rtol = o.atol = 0;
  EXPECT_THROW(ode_solve(forced_decay, scalar(1.0), 0.0, 1.0, o), Error);
  o.rtol = o.atol = 1e-5;
  auto nan_after_half = [](double t, const torch::Tensor& y) {
    return t > 0.5 ? y * std::nan("") : -y;
  };
  EXPECT_THROW(ode_solve(nan_after_half, scalar(1.0), 0.0, 1.0, o), Error);
}

TEST(OdeSolver, EmptyIntervalReturnsTheStartWithoutEvaluations) {
  OdeOptions o;
  auto r = ode_solve(forced_decay, scalar(2.0), 0.5, 0.5, o);
  EXPECT_EQ(r.nfe, 0);
  EXPECT_DOUBLE_EQ(r.y.item<double>(), 2.0);
}

}  // namespace
}  // namespace scorch
