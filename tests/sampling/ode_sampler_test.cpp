// The deterministic and EDM/DDIM samplers driven by exact scores of Gaussian
// and Gaussian-mixture data (nn/analytic.h). For Gaussian data N(mu, s^2 I)
// the probability flow is known in closed form: the marginal at t is
// N(m_t mu, v_t I) with v_t = m_t^2 s^2 + std_t^2, and the flow keeps each
// sample's standardized position, x_t = m_t mu + sqrt(v_t / v_T) (x_T - m_T mu).
// The ODE, EDM (no churn) and DDIM (eta = 0) samplers are checked sample by
// sample against that map; the stochastic variants and the mixture by moments
// and mode weights, with tolerances of 4 standard errors plus the stated bias.
#include "sampling/ode_sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "testing/fit.h"
#include "testing/sdes.h"
#include "core/error.h"
#include "nn/analytic.h"
#include "nn/score_model.h"
#include "sampling/ddim.h"
#include "sampling/edm_sampler.h"

namespace scorch {
namespace {

constexpr double kDataStd = 0.5;

std::shared_ptr<Sde> make(SdeKind kind) { return testing::make_test_sde(kind, 50.0, 1000); }

const char* sde_name(SdeKind kind) { return testing::sde_label(kind); }

double default_eps(SdeKind kind) { return kind == SdeKind::kVE ? 1e-5 : 1e-3; }

torch::Tensor data_mean() { return torch::tensor({1.0, -2.0}, torch::kDouble); }

struct Gaussian {
  std::shared_ptr<Sde> sde;
  ScoreFn score;
};

Gaussian gaussian(SdeKind kind) {
  auto sde = make(kind);
  auto net = make_analytic_gaussian(sde, /*continuous=*/true, data_mean(), kDataStd);
  return {sde, make_score_fn(net.ptr(), sde, /*continuous=*/true)};
}

// m(t), std(t) of the SDE at one time.
std::pair<double, double> mean_std(const Sde& sde, double t) {
  auto mp =
      sde.marginal_prob(torch::ones({1}, torch::kDouble), torch::full({1}, t, torch::kDouble));
  return {mp.mean.item<double>(), mp.std.item<double>()};
}

// The exact probability flow of Gaussian data from x_T at T to time t.
torch::Tensor gaussian_flow(const Sde& sde, const torch::Tensor& x_T, double t) {
  const auto [m_T, std_T] = mean_std(sde, sde.T());
  const auto [m_t, std_t] = mean_std(sde, t);
  const double v_T = m_T * m_T * kDataStd * kDataStd + std_T * std_T;
  const double v_t = m_t * m_t * kDataStd * kDataStd + std_t * std_t;
  const auto mu = data_mean();
  return m_t * mu + std::sqrt(v_t / v_T) * (x_T.to(torch::kDouble) - m_T * mu);
}

using testing::log_log_slope;

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Sample mean and covariance of x [n, 2] against mean `mu` [2] and covariance
// var I: each mean within 4 s.e. + mean_bias, variances within 4 s.e.
// (sqrt(2/n) var) + var_bias, the covariance within 4 s.e. (var / sqrt(n)).
void expect_moments(const torch::Tensor& x, const torch::Tensor& mu, double var, double mean_bias,
                    double var_bias, const std::string& what) {
  const int64_t n = x.size(0);
  auto xd = x.to(torch::kDouble);
  auto mean = xd.mean(0);
  auto centered = xd - mean;
  auto cov = centered.t().mm(centered) / (n - 1);
  const double mean_tol = 4 * std::sqrt(var / n) + mean_bias;
  const double var_tol = 4 * std::sqrt(2.0 / n) * var + var_bias;
  for (int d = 0; d < 2; ++d) {
    EXPECT_NEAR(mean[d].item<double>(), mu[d].item<double>(), mean_tol) << what << " dim " << d;
    EXPECT_NEAR(cov[d][d].item<double>(), var, var_tol) << what << " dim " << d;
  }
  EXPECT_NEAR(cov[0][1].item<double>(), 0.0, 4 * var / std::sqrt(n)) << what;
}

// ---------------------------------------------------------------------------
// Probability-flow ODE sampler.

struct OdeCase {
  SdeKind sde;
  OdeMethod method;
  double tol;  // max per-sample error against the exact flow
};

class PfOde : public ::testing::TestWithParam<OdeCase> {};

TEST_P(PfOde, MapsPriorNoiseAlongTheExactFlow) {
  const OdeCase c = GetParam();
  torch::manual_seed(1);
  auto g = gaussian(c.sde);
  OdeSamplerOptions o;
  o.method = c.method;
  o.num_steps = 100;
  o.eps = default_eps(c.sde);
  o.denoise = false;
  auto x_T = g.sde->prior_sampling({2000, 2}, torch::kDouble);
  auto r = ode_sample_from(*g.sde, g.score, x_T, o);
  const double err = max_abs_diff(r.x, gaussian_flow(*g.sde, x_T, o.eps));
  EXPECT_LT(err, c.tol);
  if (c.method == OdeMethod::kRk4) EXPECT_EQ(r.nfe, 4 * 100);
  if (c.method == OdeMethod::kDopri5) EXPECT_EQ((r.nfe - 2) % 6, 0);  // 2 + 6 per attempt
  if (c.method == OdeMethod::kDopri8) EXPECT_EQ((r.nfe - 2) % 12, 0);  // 2 + 12 per attempt
  if (c.method == OdeMethod::kExplicitAdams) EXPECT_EQ(r.nfe, 100 + 9);  // 3 RK4 steps, then 1 each
  std::printf("[ pf-ode] %-5s %-6s max |x - exact flow| %.2e, nfe %lld\n", sde_name(c.sde),
              ode_method_name(c.method), err, static_cast<long long>(r.nfe));
}

INSTANTIATE_TEST_SUITE_P(All, PfOde,
                         // Measured: DOPRI5 (rtol = atol = 1e-5) 1.6e-5 / 5.0e-6 / 9.0e-6 with
                         // 104 / 68 / 68 evaluations, RK4 (100 steps) 3.1e-6 / 4.4e-8 / 3.7e-8
                         // for VE (sigma_max 50) / VP / sub-VP. DOP853 (1e-5) 8.3e-7 / 1.5e-5
                         // with 86 / 62 evaluations; 100 steps of explicit Adams 1.9e-4 /
                         // 2.6e-5 (109 evaluations), implicit Adams 3.6e-6 / 2.1e-7 (206).
                         ::testing::Values(OdeCase{SdeKind::kVE, OdeMethod::kDopri5, 2e-4},
                                           OdeCase{SdeKind::kVP, OdeMethod::kDopri5, 1e-4},
                                           OdeCase{SdeKind::kSubVP, OdeMethod::kDopri5, 1e-4},
                                           OdeCase{SdeKind::kVE, OdeMethod::kRk4, 1e-4},
                                           OdeCase{SdeKind::kVP, OdeMethod::kRk4, 1e-5},
                                           OdeCase{SdeKind::kSubVP, OdeMethod::kRk4, 1e-5},
                                           OdeCase{SdeKind::kVE, OdeMethod::kDopri8, 5e-6},
                                           OdeCase{SdeKind::kVP, OdeMethod::kDopri8, 1e-4},
                                           OdeCase{SdeKind::kVE, OdeMethod::kExplicitAdams, 1e-3},
                                           OdeCase{SdeKind::kVP, OdeMethod::kExplicitAdams, 1e-4},
                                           OdeCase{SdeKind::kVE, OdeMethod::kImplicitAdams, 2e-5},
                                           OdeCase{SdeKind::kVP, OdeMethod::kImplicitAdams, 1e-6}),
                         [](const ::testing::TestParamInfo<OdeCase>& info) {
                           return std::string(sde_name(info.param.sde)) + "_" +
                                  ode_method_name(info.param.method);
                         });

// The default sampler (DOPRI5 at rtol = atol = 1e-5, then the denoising step)
// on 20000 float32 samples.
class PfOdeDefault : public ::testing::TestWithParam<SdeKind> {};

TEST_P(PfOdeDefault, RecoversGaussianMomentsWithDenoising) {
  const SdeKind kind = GetParam();
  torch::manual_seed(2);
  auto g = gaussian(kind);
  OdeSamplerOptions o;
  o.eps = default_eps(kind);
  const int64_t n = 20000;
  auto r = ode_sample(*g.sde, g.score, {n, 2}, torch::kFloat32, o);
  ASSERT_EQ(r.x.scalar_type(), torch::kFloat32);
  EXPECT_EQ(r.nfe % 6, 3);  // 2 + 6 per attempted step + 1 denoising step
  // The prior N(0, p^2) is not exactly the marginal at T, N(m_T mu, v_T): the
  // flow maps it to mean mu - k m_T mu and std k p, k = s / sqrt(v_T).
  const auto [m_T, std_T] = mean_std(*g.sde, g.sde->T());
  const double v_T = m_T * m_T * kDataStd * kDataStd + std_T * std_T;
  const double k = kDataStd / std::sqrt(v_T);
  const double prior_std = kind == SdeKind::kVE ? 50.0 : 1.0;
  // Allow 2e-3 (mean and variance) for the solver and the denoising step,
  // both far below it here.
  expect_moments(r.x, data_mean() * (1 - k * m_T), std::pow(k * prior_std, 2), 2e-3, 2e-3,
                 sde_name(kind));
}

INSTANTIATE_TEST_SUITE_P(All, PfOdeDefault,
                         ::testing::Values(SdeKind::kVE, SdeKind::kVP, SdeKind::kSubVP),
                         [](const ::testing::TestParamInfo<SdeKind>& info) {
                           return std::string(sde_name(info.param));
                         });

TEST(OdeSampler, EpsOutsideTheTimeRangeThrows) {
  auto g = gaussian(SdeKind::kVP);
  OdeSamplerOptions o;
  o.eps = 0;
  EXPECT_THROW(ode_sample(*g.sde, g.score, {4, 2}, torch::kFloat32, o), Error);
}

// ---------------------------------------------------------------------------
// EDM sampler.

TEST(EdmSampler, NoiseToSignalRatioInvertsForEverySde) {
  for (auto kind : {SdeKind::kVE, SdeKind::kVP, SdeKind::kSubVP}) {
    auto sde = make(kind);
    for (double t : {1e-5, 1e-3, 0.1, 0.5, 0.9, 1.0}) {
      const auto [m, std] = mean_std(*sde, t);
      const double sigma = edm_sigma_of_time(*sde, t);
      EXPECT_NEAR(sigma, std / m, 1e-12 * sigma) << sde_name(kind) << " t " << t;
      EXPECT_NEAR(edm_time_of_sigma(*sde, sigma), t, 1e-9) << sde_name(kind) << " t " << t;
    }
  }
}

TEST(EdmSampler, SigmaStepsFollowTheRhoSchedule) {
  auto s = edm_sigma_steps(18, 0.002, 80.0, 7.0);
  ASSERT_EQ(s.size(0), 19);
  EXPECT_DOUBLE_EQ(s[0].item<double>(), 80.0);
  EXPECT_NEAR(s[17].item<double>(), 0.002, 1e-15);
  EXPECT_EQ(s[18].item<double>(), 0.0);
  // i = 9: (80^(1/7) + 9/17 (0.002^(1/7) - 80^(1/7)))^7.
  const double expected = std::pow(
      std::pow(80.0, 1 / 7.0) + 9 / 17.0 * (std::pow(0.002, 1 / 7.0) - std::pow(80.0, 1 / 7.0)),
      7.0);
  EXPECT_NEAR(s[9].item<double>(), expected, 1e-12);
  EXPECT_THROW(edm_sigma_steps(18, 1.0, 0.5, 7.0), Error);
}

class Edm : public ::testing::TestWithParam<SdeKind> {};

// Heun's method is second order: against the exact flow the largest
// per-sample error must fall as N^-2 (fitted slope within [-2.7, -1.7]).
// Measured (and reproduced by the scalar recursion of Algorithm 2 for
// N(mu, 0.25) data): VE 0.077 / 0.022 / 0.0048 / 0.00086 and VP 0.12 /
// 0.034 / 0.0076 / 0.0015 at N = 18 / 32 / 64 / 128.
TEST_P(Edm, DeterministicSamplerConvergesToTheExactFlowAtSecondOrder) {
  const SdeKind kind = GetParam();
  torch::manual_seed(3);
  auto g = gaussian(kind);
  auto z = torch::randn({2000, 2}, torch::kDouble);
  // In x_hat = x / m the flow of N(mu, s^2) data from x_hat = sigma_max z to
  // sigma = 0 is mu + s / sqrt(s^2 + sigma_max^2) (sigma_max z - mu).
  const double sigma_max = edm_sigma_of_time(*g.sde, g.sde->T());
  const auto mu = data_mean();
  auto exact =
      mu + kDataStd / std::sqrt(kDataStd * kDataStd + sigma_max * sigma_max) * (sigma_max * z - mu);
  std::vector<double> steps, errors;
  for (int64_t n : {18, 32, 64, 128}) {
    EdmOptions o;
    o.num_steps = n;
    o.eps = default_eps(kind);
    auto r = edm_sample_from(*g.sde, g.score, z, o);
    EXPECT_EQ(r.nfe, 2 * n - 1);
    const double err = max_abs_diff(r.x, exact);
    std::printf("[ edm   ] %-5s N=%-3lld max |x - exact flow| %.2e, nfe %lld\n", sde_name(kind),
                static_cast<long long>(n), err, static_cast<long long>(r.nfe));
    if (n == 18) continue;  // pre-asymptotic
    steps.push_back(static_cast<double>(n));
    errors.push_back(err);
    if (n == 128) {
      EXPECT_LT(err, 3e-3);
      // The same latents give the same samples whatever the global RNG does.
      torch::manual_seed(99);
      EXPECT_TRUE(torch::equal(edm_sample_from(*g.sde, g.score, z, o).x, r.x));
    }
  }
  const double slope = log_log_slope(steps, errors);
  EXPECT_GT(slope, -2.7);
  EXPECT_LT(slope, -1.7);
  std::printf("[ edm   ] %-5s error ~ N^%.2f\n", sde_name(kind), slope);
}

// With churn (S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1) and N = 128.
// Heun's error inflates the variance by O(N^-2): 0.253 / 0.254 instead of
// 0.25 for VE / VP by the scalar recursion; allowed: 4 s.e. + 0.01.
TEST_P(Edm, StochasticChurnKeepsTheGaussianMoments) {
  const SdeKind kind = GetParam();
  torch::manual_seed(4);
  auto g = gaussian(kind);
  EdmOptions o;
  o.num_steps = 128;
  o.eps = default_eps(kind);
  o.s_churn = 40;
  o.s_tmin = 0.05;
  o.s_tmax = 50;
  auto r = edm_sample(*g.sde, g.score, {10000, 2}, torch::kFloat32, o);
  EXPECT_EQ(r.nfe, 2 * 128 - 1);
  // Starting from N(0, sigma_max^2) rather than N(mu, s^2 + sigma_max^2) leaves
  // at most the flow's bias k |mu|, k = s / sigma_max (churn shrinks it further).
  const double sigma_max = edm_sigma_of_time(*g.sde, g.sde->T());
  expect_moments(r.x, data_mean(), kDataStd * kDataStd, kDataStd / sigma_max * 2.0, 0.01,
                 std::string("edm churn ") + sde_name(kind));
}

INSTANTIATE_TEST_SUITE_P(All, Edm, ::testing::Values(SdeKind::kVE, SdeKind::kVP, SdeKind::kSubVP),
                         [](const ::testing::TestParamInfo<SdeKind>& info) {
                           return std::string(sde_name(info.param));
                         });

TEST(EdmSampler, NoiseRangeBeyondTheSdeThrows) {
  auto g = gaussian(SdeKind::kVE);
  EdmOptions o;
  o.sigma_max = 80;  // the SDE's sigma(T) is 50
  EXPECT_THROW(edm_sample(*g.sde, g.score, {4, 2}, torch::kFloat32, o), Error);
}

// ---------------------------------------------------------------------------
// DDIM.

// DDIM with eta = 0 is Euler's method for the flow in x / sqrt(alpha_bar)
// against sqrt(1 / alpha_bar - 1): first order. Its last step returns the
// denoised mean at eps, E[x_0 | x_eps], of the exact flow's x_eps. Measured
// (and reproduced by the scalar recursion of eq. 12): 0.11 / 0.056 / 0.028
// at N = 50 / 100 / 200 (evenly spaced t is coarse where sigma ~ s).
TEST(Ddim, DeterministicDdimConvergesToTheExactFlowAtFirstOrder) {
  torch::manual_seed(5);
  auto g = gaussian(SdeKind::kVP);
  auto x_T = g.sde->prior_sampling({2000, 2}, torch::kDouble);
  std::vector<double> steps, errors;
  for (int64_t n : {50, 100, 200}) {
    DdimOptions o;
    o.num_steps = n;
    o.eta = 0;
    auto r = ddim_sample_from(*g.sde, g.score, x_T, o);
    EXPECT_EQ(r.nfe, n);
    const auto [m, std] = mean_std(*g.sde, o.eps);
    const auto mu = data_mean();
    const double v = m * m * kDataStd * kDataStd + std * std;
    auto x_eps = gaussian_flow(*g.sde, x_T, o.eps);
    auto exact = mu + (m * kDataStd * kDataStd / v) * (x_eps - m * mu);
    const double err = max_abs_diff(r.x, exact);
    steps.push_back(static_cast<double>(n));
    errors.push_back(err);
    std::printf("[ ddim  ] eta=0 N=%-3lld max |x - exact flow| %.2e\n", static_cast<long long>(n),
                err);
    if (n == 200) {
      EXPECT_LT(err, 0.04);
      torch::manual_seed(99);
      EXPECT_TRUE(torch::equal(ddim_sample_from(*g.sde, g.score, x_T, o).x, r.x));
    }
  }
  const double slope = log_log_slope(steps, errors);
  EXPECT_NEAR(slope, -1.0, 0.3);
  std::printf("[ ddim  ] error ~ N^%.2f\n", slope);
}

// N = 500: the first-order bias of the variance is -0.003 (eta 0) and -0.007
// (eta 1) by the scalar recursion; allowed: 4 s.e. + 0.01. The discrete
// variant runs on a discretely trained (analytic) model: score_fn divides by
// the table's sqrt(1 - alpha_bar), so eps_pred is the network output itself.
TEST(Ddim, StochasticAndDiscreteDdimKeepTheGaussianMoments) {
  torch::manual_seed(6);
  auto vp = make(SdeKind::kVP);
  auto continuous_net = make_analytic_gaussian(vp, true, data_mean(), kDataStd);
  auto discrete_net = make_analytic_gaussian(vp, false, data_mean(), kDataStd);
  struct Run {
    double eta;
    bool discrete;
  };
  for (Run run : {Run{1.0, false}, Run{0.0, true}, Run{1.0, true}}) {
    auto score = run.discrete ? make_score_fn(discrete_net.ptr(), vp, false)
                              : make_score_fn(continuous_net.ptr(), vp, true);
    DdimOptions o;
    o.num_steps = 500;
    o.eta = run.eta;
    o.discrete = run.discrete;
    auto r = ddim_sample(*vp, score, {10000, 2}, torch::kFloat32, o);
    EXPECT_EQ(r.nfe, 500);
    expect_moments(r.x, data_mean(), kDataStd * kDataStd, 2e-3, 0.01,
                   "ddim eta " + std::to_string(run.eta) + (run.discrete ? " discrete" : ""));
  }
}

TEST(Ddim, RefusesOtherSdesNamingTheKey) {
  for (auto kind : {SdeKind::kVE, SdeKind::kSubVP}) {
    auto g = gaussian(kind);
    try {
      ddim_sample(*g.sde, g.score, {4, 2}, torch::kFloat32, DdimOptions{});
      ADD_FAILURE() << "no error for " << sde_name(kind);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("training.sde"), std::string::npos) << e.what();
    }
  }
}

// ---------------------------------------------------------------------------
// A two-component mixture 0.3 N((-2, 0), 0.25 I) + 0.7 N((2, 0), 0.25 I):
// every sampler keeps the mode weights (fraction of samples nearest each
// component, 4 binomial s.e.) and each component's mean and spread. Steps are
// chosen so that the discretization bias (above) stays below 0.01 in std:
// DOPRI5 at 1e-5, EDM N = 128, DDIM N = 250.

struct MixtureCase {
  const char* name;
  SdeKind sde;
};

class Mixture : public ::testing::TestWithParam<MixtureCase> {};

TEST_P(Mixture, ModeWeightsAndSpreadAreKept) {
  const MixtureCase c = GetParam();
  torch::manual_seed(7);
  auto sde = make(c.sde);
  const auto means = torch::tensor({{-2.0, 0.0}, {2.0, 0.0}}, torch::kDouble);
  const double w_right = 0.7;
  auto net =
      make_analytic_mixture(sde, true, means, torch::tensor({0.3, 0.7}, torch::kDouble), kDataStd);
  auto score = make_score_fn(net.ptr(), sde, true);
  const int64_t n = 8000;
  const std::string name = c.name;
  torch::Tensor x;
  if (name.rfind("ode", 0) == 0) {
    OdeSamplerOptions o;
    o.eps = default_eps(c.sde);
    x = ode_sample(*sde, score, {n, 2}, torch::kFloat32, o).x;
  } else if (name.rfind("edm", 0) == 0) {
    EdmOptions o;
    o.num_steps = 128;
    o.eps = default_eps(c.sde);
    if (name.find("churn") != std::string::npos) {
      o.s_churn = 40;
      o.s_tmin = 0.05;
      o.s_tmax = 50;
    }
    x = edm_sample(*sde, score, {n, 2}, torch::kFloat32, o).x;
  } else {
    DdimOptions o;
    o.num_steps = 250;
    o.eta = name.find("eta1") != std::string::npos ? 1.0 : 0.0;
    x = ddim_sample(*sde, score, {n, 2}, torch::kFloat32, o).x;
  }
  x = x.to(torch::kDouble);
  auto right = x.select(1, 0) > 0;
  const double frac = right.to(torch::kDouble).mean().item<double>();
  // 4 s.e. plus 0.01 for the prior's mismatch with p_T (largest for VE:
  // p_T has mean 0.8 in x, 0.016 of the prior's std 50).
  EXPECT_NEAR(frac, w_right, 4 * std::sqrt(w_right * (1 - w_right) / n) + 0.01) << c.name;
  auto xr = x.index({right}).view({-1, 2});
  auto xl = x.index({right.logical_not()}).view({-1, 2});
  for (auto* part : {&xr, &xl}) {
    const double mu0 = part == &xr ? 2.0 : -2.0;
    const int64_t m = part->size(0);
    EXPECT_NEAR(part->select(1, 0).mean().item<double>(), mu0, 4 * kDataStd / std::sqrt(m) + 0.02)
        << c.name;
    EXPECT_NEAR(part->select(1, 1).std().item<double>(), kDataStd,
                4 * kDataStd / std::sqrt(2.0 * m) + 0.01)
        << c.name;
  }
  std::printf("[ mix   ] %-14s right-mode fraction %.4f (weight 0.7)\n", c.name, frac);
}

INSTANTIATE_TEST_SUITE_P(
    All, Mixture,
    ::testing::Values(MixtureCase{"ode_ve", SdeKind::kVE}, MixtureCase{"ode_vp", SdeKind::kVP},
                      MixtureCase{"ode_subvp", SdeKind::kSubVP},
                      MixtureCase{"edm_ve", SdeKind::kVE}, MixtureCase{"edm_vp", SdeKind::kVP},
                      MixtureCase{"edm_ve_churn", SdeKind::kVE},
                      MixtureCase{"edm_vp_churn", SdeKind::kVP},
                      MixtureCase{"ddim_eta0", SdeKind::kVP},
                      MixtureCase{"ddim_eta1", SdeKind::kVP}),
    [](const ::testing::TestParamInfo<MixtureCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace scorch
