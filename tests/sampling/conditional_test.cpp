// Conditional sampling driven by exact analytic scores. Inpainting,
// colorization and super-resolution must impose their observation exactly and,
// for isotropic Gaussian data (whose free directions are independent of the
// observed ones), sample the free directions with the data's moments; with a
// two-component mixture the known pixels must select the component. Guidance is
// checked against the closed-form moments of Euler–Maruyama driven by the
// guided score of Gaussians, and must land mixture samples on their class.
#include "sampling/conditional.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "testing/sdes.h"
#include "core/error.h"
#include "nn/analytic.h"
#include "nn/score_model.h"
#include "sampling/dpm_solver.h"
#include "sampling/unipc.h"

namespace scorch {
namespace {

// Sampling steps of the PC tests. As in score_sde, the SDE has one discrete
// level per step: the reverse-diffusion and ancestral predictors step one level.
constexpr int64_t kSteps = 500;

std::shared_ptr<Sde> make(SdeKind kind) { return testing::make_test_sde(kind, 10.0, kSteps); }

struct Case {
  const char* name;
  SdeKind sde;
  Predictor predictor;
  Corrector corrector;
};

PCOptions options_for(const Case& c) {
  PCOptions o;
  o.predictor = c.predictor;
  o.corrector = c.corrector;
  o.num_steps = kSteps;
  o.eps = c.sde == SdeKind::kVE ? 1e-5 : 1e-3;
  return o;
}

const Case kCases[] = {
    {"vp_em", SdeKind::kVP, Predictor::kEulerMaruyama, Corrector::kNone},
    {"subvp_em", SdeKind::kSubVP, Predictor::kEulerMaruyama, Corrector::kNone},
    {"ve_rd_langevin", SdeKind::kVE, Predictor::kReverseDiffusion, Corrector::kLangevin},
};

// The replacement method is approximate: the unknown pixels see the known ones
// only through a fresh noisy copy at each step, so at high noise they may settle
// on the wrong mixture component. Predictor-only VP / sub-VP put about 3% of the
// samples on the other component in the mixture test below; a Langevin
// corrector restores the agreement, so the mixture test runs with one.
const Case kCorrectedCases[] = {
    {"vp_em_langevin", SdeKind::kVP, Predictor::kEulerMaruyama, Corrector::kLangevin},
    {"subvp_em_langevin", SdeKind::kSubVP, Predictor::kEulerMaruyama, Corrector::kLangevin},
    {"ve_rd_langevin", SdeKind::kVE, Predictor::kReverseDiffusion, Corrector::kLangevin},
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }

// Sample moments over the batch, per coordinate: [...] each.
torch::Tensor batch_mean(const torch::Tensor& x) { return x.to(torch::kDouble).mean(0); }
torch::Tensor batch_std(const torch::Tensor& x) { return x.to(torch::kDouble).std(0); }
double max_abs(const torch::Tensor& v) { return v.abs().max().item<double>(); }

// ---------------------------------------------------------------------------
// Inpainting.

class Inpaint : public ::testing::TestWithParam<Case> {};

// N(mu, s^2 I) on [1, 2, 2] images, two pixels known: the unknown pixels are
// independent of the known ones, so they must follow N(mu_u, s^2).
TEST_P(Inpaint, KnownPixelsExactFreePixelsFollowGaussian) {
  const Case c = GetParam();
  torch::manual_seed(1);
  auto sde = make(c.sde);
  const auto mu = torch::tensor({1.0f, -1.0f, 0.5f, 2.0f}).view({1, 2, 2});
  const double s = 0.5;
  auto net = make_analytic_gaussian(sde, true, mu, s);
  const int64_t n = 6000;
  const auto mask = torch::tensor({1.0f, 0.0f, 0.0f, 1.0f}).view({1, 1, 2, 2});
  // Known pixels anywhere; unknown ones hold 100 so that any leak shows.
  auto data = torch::where(mask.expand({n, 1, 2, 2}) > 0, 2 * torch::randn({n, 1, 2, 2}),
                           torch::full({n, 1, 2, 2}, 100.0f));
  auto r = pc_inpaint(*sde, make_score_fn(net.ptr(), sde, true), data, mask, options_for(c));
  ASSERT_EQ(r.x.sizes(), data.sizes());
  ASSERT_TRUE(torch::isfinite(r.x).all().item<bool>());
  const auto known = (mask > 0).expand_as(data);
  EXPECT_TRUE(torch::equal(r.x.masked_select(known), data.masked_select(known)));
  const auto free = r.x.flatten(1).index_select(1, torch::tensor({1, 2}));  // [n, 2]
  const auto mu_free = mu.flatten().index_select(0, torch::tensor({1, 2})).to(torch::kDouble);
  // Standard errors 0.0065 (mean), 0.0046 (std); 0.03 also bounds the step bias.
  EXPECT_LT(max_abs(batch_mean(free) - mu_free), 0.03) << batch_mean(free);
  EXPECT_LT(max_abs(batch_std(free) - s), 0.03) << batch_std(free);
  const int64_t per_step = 1 + (c.corrector == Corrector::kNone ? 0 : 1);
  EXPECT_EQ(r.nfe, kSteps * per_step);
}

// Equal mixture of N(+1.5, s^2 I) and N(-1.5, s^2 I) with the known pixels drawn
// from the + component: the posterior weight of - is about exp(-36), so every
// sample's unknown pixels must come from N(+1.5, s^2).
class InpaintMixture : public ::testing::TestWithParam<Case> {};

TEST_P(InpaintMixture, KnownPixelsSelectMixtureComponent) {
  const Case c = GetParam();
  torch::manual_seed(2);
  auto sde = make(c.sde);
  const double s = 0.5;
  const auto means = torch::stack({torch::full({1, 2, 2}, 1.5f), torch::full({1, 2, 2}, -1.5f)});
  auto net = make_analytic_mixture(sde, true, means, torch::ones({2}), s);
  const int64_t n = 4000;
  const auto mask = torch::tensor({1.0f, 0.0f, 0.0f, 1.0f}).view({1, 1, 2, 2});
  auto data = 1.5 + s * torch::randn({n, 1, 2, 2});
  auto r = pc_inpaint(*sde, make_score_fn(net.ptr(), sde, true), data, mask, options_for(c));
  const auto known = (mask > 0).expand_as(data);
  EXPECT_TRUE(torch::equal(r.x.masked_select(known), data.masked_select(known)));
  const auto free = r.x.flatten(1).index_select(1, torch::tensor({1, 2}));
  const double on_plus = (free.sum(1) > 0).to(torch::kDouble).mean().item<double>();
  std::printf(
      "[ measured ] inpaint mixture %s: fraction on the known component %.4f, "
      "free mean %.4f std %.4f\n",
      c.name, on_plus, batch_mean(free).mean().item<double>(),
      batch_std(free).mean().item<double>());
  EXPECT_GE(on_plus, 0.99);
  EXPECT_LT(max_abs(batch_mean(free) - 1.5), 0.05) << batch_mean(free);
  EXPECT_LT(max_abs(batch_std(free) - s), 0.05) << batch_std(free);
}

// Also the predictor and corrector that the other suites leave out.
const Case kInpaintCases[] = {
    kCases[0],
    kCases[1],
    kCases[2],
    {"vp_ancestral_ald", SdeKind::kVP, Predictor::kAncestral, Corrector::kAnnealedLangevin},
};
INSTANTIATE_TEST_SUITE_P(All, Inpaint, ::testing::ValuesIn(kInpaintCases), case_name);
INSTANTIATE_TEST_SUITE_P(All, InpaintMixture, ::testing::ValuesIn(kCorrectedCases), case_name);

// With nothing known and a deterministic predictor, inpainting is plain PC
// sampling: the same draws give the same samples as pc_sample.
TEST(InpaintTest, EmptyMaskMatchesPcSample) {
  auto sde = make(SdeKind::kVP);
  auto net = make_analytic_gaussian(sde, true, torch::tensor({1.0f, -2.0f}), 0.5);
  auto score = make_score_fn(net.ptr(), sde, true);
  PCOptions o;
  o.predictor = Predictor::kReverseDiffusion;
  o.probability_flow = true;
  o.num_steps = 100;
  torch::manual_seed(3);
  auto expected = pc_sample(*sde, score, {64, 2}, torch::TensorOptions(), o);
  torch::manual_seed(3);
  auto r = pc_inpaint(*sde, score, torch::zeros({64, 2}), torch::zeros({2}), o);
  EXPECT_TRUE(torch::equal(r.x, expected.x));
  EXPECT_EQ(r.nfe, expected.nfe);
}

TEST(InpaintTest, RejectsBadMasks) {
  auto sde = make(SdeKind::kVP);
  auto net = make_analytic_gaussian(sde, true, torch::zeros({2}), 0.5);
  auto score = make_score_fn(net.ptr(), sde, true);
  PCOptions o;
  o.num_steps = 2;
  const auto data = torch::zeros({4, 2});
  EXPECT_THROW(pc_inpaint(*sde, score, data, torch::full({4, 2}, 0.5f), o), Error);
  EXPECT_THROW(pc_inpaint(*sde, score, data, torch::ones({3}), o), Error);
  EXPECT_THROW(pc_inpaint(*sde, score, data, torch::ones({1, 4, 2}), o), Error);
  EXPECT_THROW(pc_inpaint(*sde, score, torch::full({4, 2}, NAN), torch::ones({2}), o), Error);
  EXPECT_NO_THROW(pc_inpaint(*sde, score, data, torch::ones({4, 1}, torch::kBool), o));
}

// ---------------------------------------------------------------------------
// Colorization and super-resolution on Gaussian images N(mu, s^2 I). For
// isotropic data the unobserved directions (per pixel: the color part
// x - mean_c x; per f x f block: x - block mean) are independent of the observed
// ones, with mean (I - P) mu and variance s^2 (1 - 1/3) resp. s^2 (1 - 1/f^2).

class Colorize : public ::testing::TestWithParam<Case> {};

TEST_P(Colorize, GrayIsExactColorFollowsGaussian) {
  const Case c = GetParam();
  torch::manual_seed(4);
  auto sde = make(c.sde);
  const auto mu = torch::tensor({0.8f, 0.6f, -0.4f, -0.2f, 0.2f, 0.0f}).view({3, 1, 2});
  const double s = 0.5;
  auto net = make_analytic_gaussian(sde, true, mu, s);
  const int64_t n = 4000;
  const auto gray = 0.2 + 0.5 * torch::randn({n, 1, 1, 2});
  auto r = pc_colorize(*sde, make_score_fn(net.ptr(), sde, true), gray, options_for(c));
  ASSERT_EQ(r.x.sizes(), torch::IntArrayRef({n, 3, 1, 2}));
  ASSERT_TRUE(torch::isfinite(r.x).all().item<bool>());
  const double gray_error = max_abs(r.x.mean(1, true) - gray);
  const auto color = r.x - r.x.mean(1, true);
  const auto color_mean = batch_mean(color), color_std = batch_std(color);
  const auto mu_color = (mu - mu.mean(0, true)).to(torch::kDouble);
  std::printf(
      "[ measured ] colorize %s: max |gray error| %.3g, color mean error %.4f, "
      "color std %.4f (expected %.4f)\n",
      c.name, gray_error, max_abs(color_mean - mu_color), color_std.mean().item<double>(),
      s * std::sqrt(2.0 / 3.0));
  EXPECT_LT(gray_error, 1e-6);
  EXPECT_LT(max_abs(color_mean - mu_color), 0.03) << color_mean;
  EXPECT_LT(max_abs(color_std - s * std::sqrt(2.0 / 3.0)), 0.03) << color_std;
}

INSTANTIATE_TEST_SUITE_P(All, Colorize, ::testing::ValuesIn(kCases), case_name);

class SuperResolve : public ::testing::TestWithParam<Case> {};

TEST_P(SuperResolve, LowResIsExactDetailFollowsGaussian) {
  const Case c = GetParam();
  torch::manual_seed(5);
  auto sde = make(c.sde);
  const int64_t f = 2;
  const auto mu = (torch::arange(16, torch::kFloat) / 8 - 1).view({1, 4, 4});
  const double s = 0.5;
  auto net = make_analytic_gaussian(sde, true, mu, s);
  const int64_t n = 4000;
  const auto y = torch::randn({n, 1, 2, 2});
  auto r = pc_super_resolve(*sde, make_score_fn(net.ptr(), sde, true), y, f, options_for(c));
  ASSERT_EQ(r.x.sizes(), torch::IntArrayRef({n, 1, 4, 4}));
  ASSERT_TRUE(torch::isfinite(r.x).all().item<bool>());
  auto up = [&](const torch::Tensor& v) {
    return v.repeat_interleave(f, -2).repeat_interleave(f, -1);
  };
  const double low_res_error = max_abs(torch::avg_pool2d(r.x, f) - y);
  const auto detail = r.x - up(torch::avg_pool2d(r.x, f));
  const auto detail_mean = batch_mean(detail), detail_std = batch_std(detail);
  const auto mu_detail = (mu - up(torch::avg_pool2d(mu.unsqueeze(0), f)[0])).to(torch::kDouble);
  std::printf(
      "[ measured ] super-resolve %s: max |A x - y| %.3g, detail mean error %.4f, "
      "detail std %.4f (expected %.4f)\n",
      c.name, low_res_error, max_abs(detail_mean - mu_detail), detail_std.mean().item<double>(),
      s * std::sqrt(0.75));
  EXPECT_LT(low_res_error, 1e-5);
  EXPECT_LT(max_abs(detail_mean - mu_detail), 0.03) << detail_mean;
  EXPECT_LT(max_abs(detail_std - s * std::sqrt(0.75)), 0.03) << detail_std;
}

INSTANTIATE_TEST_SUITE_P(All, SuperResolve, ::testing::ValuesIn(kCases), case_name);

TEST(ColorizeTest, DecouplingMatrixIsScoreSdeTransposed) {
  const auto d = color_decoupling_matrix();
  EXPECT_TRUE(torch::allclose(d.matmul(d.t()), torch::eye(3, torch::kDouble), 0, 1e-15));
  // score_sde controllable_generation.py's M (float32 literals); decouple = M^T x.
  const auto m =
      torch::tensor({5.7735014e-01, -8.1649649e-01, 4.7008697e-08, 5.7735026e-01, 4.0824834e-01,
                     7.0710671e-01, 5.7735026e-01, 4.0824822e-01, -7.0710683e-01},
                    torch::kDouble)
          .view({3, 3});
  EXPECT_LT(max_abs(d - m.t()), 1e-6);
}

TEST(ColorizeTest, AcceptsThreeChannelGrayAndRejectsOthers) {
  auto sde = make(SdeKind::kVP);
  auto net = make_analytic_gaussian(sde, true, torch::zeros({3, 2, 2}), 0.5);
  auto score = make_score_fn(net.ptr(), sde, true);
  PCOptions o;
  o.num_steps = 10;
  const auto gray = torch::randn({4, 1, 2, 2});
  auto r = pc_colorize(*sde, score, gray.expand({-1, 3, -1, -1}), o);
  EXPECT_LT(max_abs(r.x.mean(1, true) - gray), 1e-6);
  EXPECT_THROW(pc_colorize(*sde, score, torch::zeros({4, 2, 2, 2}), o), Error);
  EXPECT_THROW(pc_colorize(*sde, score, torch::zeros({4, 2, 2}), o), Error);
  EXPECT_THROW(pc_super_resolve(*sde, score, torch::zeros({4, 3, 1, 1}), 0, o), Error);
  EXPECT_THROW(pc_super_resolve(*sde, score, torch::zeros({3, 1, 1}), 2, o), Error);
}

// ---------------------------------------------------------------------------
// Classifier-free guidance.

// A class-conditional analytic network: label k < K gives nets[k]'s output, the
// null label K (or no labels) gives nets[K]'s.
class ClassAnalyticNetImpl : public ScoreNetImpl {
 public:
  explicit ClassAnalyticNetImpl(std::vector<AnalyticScoreNet> nets) : nets_(std::move(nets)) {}
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                        const torch::Tensor& class_labels) override {
    const int64_t null = static_cast<int64_t>(nets_.size()) - 1;
    auto labels = class_labels.defined() ? class_labels : torch::full({x.size(0)}, null);
    auto out = torch::zeros_like(x);
    for (int64_t k = 0; k <= null; ++k) {
      auto pick = batch_view((labels == k).to(x.dtype()), x);
      out = out + pick * nets_[k]->forward(x, time_cond);
    }
    return out;
  }

 private:
  std::vector<AnalyticScoreNet> nets_;
};

TEST(GuidanceTest, CombinesConditionalAndNullScores) {
  auto sde = make(SdeKind::kVP);
  auto c0 = make_analytic_gaussian(sde, true, torch::tensor({1.0f, 0.0f}), 0.5);
  auto c1 = make_analytic_gaussian(sde, true, torch::tensor({-1.0f, 2.0f}), 0.3);
  auto u = make_analytic_gaussian(sde, true, torch::zeros({2}), 1.5);
  auto net = std::make_shared<ClassAnalyticNetImpl>(std::vector<AnalyticScoreNet>{c0, c1, u});
  const auto labels = torch::tensor({0, 1, 1, 0}, torch::kLong);
  const auto x = torch::randn({4, 2});
  const auto t = torch::tensor({0.9f, 0.5f, 0.1f, 0.01f});
  const double w = 2.5;
  auto guided = make_guided_score_fn(net, sde, true, labels, 2, w);
  const auto is_0 = (labels == 0).to(torch::kFloat).unsqueeze(1);
  const auto cond = is_0 * c0->score(x, t) + (1 - is_0) * c1->score(x, t);
  const auto expected = (1 + w) * cond - w * u->score(x, t);
  EXPECT_TRUE(torch::allclose(guided(x, t), expected, 1e-5, 1e-5));
  auto unguided = make_guided_score_fn(net, sde, true, labels, 2, 0.0);
  EXPECT_TRUE(torch::allclose(unguided(x, t), cond, 1e-5, 1e-5));

  EXPECT_THROW(make_guided_score_fn(net, sde, true, torch::tensor({0, 2}), 2, w), Error);
  EXPECT_THROW(make_guided_score_fn(net, sde, true, torch::tensor({-1, 0}), 2, w), Error);
  EXPECT_THROW(make_guided_score_fn(net, sde, true, torch::tensor({0.0f}), 2, w), Error);
  EXPECT_THROW(make_guided_score_fn(net, sde, true, labels, 2, -0.5), Error);
  EXPECT_THROW(make_guided_score_fn(net, sde, true, labels, 0, w), Error);
  EXPECT_THROW(guided(torch::randn({3, 2}), t.slice(0, 0, 3)), Error);
}

// Class data N(mu_c, s^2 I), null model N(mu_u, S^2 I) with S > s. The guided
// score is then linear, -a(t) x + b(t) with a = (1+w)/v_c - w/v_u and
// b = m ((1+w) mu_c/v_c - w mu_u/v_u) (v = m^2 s^2 + sigma^2), so Euler–Maruyama
// from N(0, 1) keeps x Gaussian with moments
//   M' = M + (A M + B) dt,  V' = (1 + A dt)^2 V + g^2 |dt|,  A = f_x + g^2 a, B = -g^2 b,
// and the output (noise removal) has (M', (1 + A dt)^2 V) of the last step.
// Guidance contracts the sample toward the class mode; the contraction is not
// that of the t = 0 tilt p(x|y)^(1+w) p(x)^(-w) (whose std is printed), since
// the guided scores at t > 0 are not the scores of one diffusion.
TEST(GuidanceTest, GaussianMomentsMatchGuidedEulerMaruyama) {
  auto sde = make(SdeKind::kVP);
  const double s = 0.5, big_s = 1.5;
  const auto mu_c = torch::tensor({1.0f, -1.0f}), mu_u = torch::zeros({2});
  auto net = std::make_shared<ClassAnalyticNetImpl>(std::vector<AnalyticScoreNet>{
      make_analytic_gaussian(sde, true, mu_c, s), make_analytic_gaussian(sde, true, mu_u, big_s)});
  const int64_t n = 10000, steps = 250;
  PCOptions o;
  o.num_steps = steps;
  const auto ts = torch::linspace(1.0, o.eps, steps, torch::kDouble);
  double previous_std = 1e9;
  for (double w : {0.0, 1.0, 3.0}) {
    // Closed-form moments per coordinate (mu_u = 0, so b depends on mu_c only).
    std::vector<double> mean(2, 0.0);
    double var = 1.0, out_var = 1.0;
    for (int64_t i = 0; i < steps; ++i) {
      const auto t = ts.slice(0, i, i + 1);
      const auto one = torch::ones({1, 1}, torch::kDouble);
      const auto kernel = sde->marginal_prob(one, t);
      const double m = kernel.mean.item<double>(), sigma = kernel.std.item<double>();
      const auto dd = sde->sde(one, t);
      const double f_x = dd.drift.item<double>(), g2 = std::pow(dd.diffusion.item<double>(), 2);
      const double v_c = m * m * s * s + sigma * sigma, v_u = m * m * big_s * big_s + sigma * sigma;
      const double a = (1 + w) / v_c - w / v_u;
      const double dt = -1.0 / steps, big_a = f_x + g2 * a;
      for (int d = 0; d < 2; ++d) {
        const double b = m * (1 + w) * mu_c[d].item<double>() / v_c;
        mean[d] += (big_a * mean[d] - g2 * b) * dt;
      }
      out_var = (1 + big_a * dt) * (1 + big_a * dt) * var;
      var = out_var + g2 * -dt;
    }
    const double tilt_std = 1 / std::sqrt((1 + w) / (s * s) - w / (big_s * big_s));

    torch::manual_seed(6);
    auto guided = make_guided_score_fn(net, sde, true, torch::zeros({n}, torch::kLong), 1, w);
    auto x = pc_sample(*sde, guided, {n, 2}, torch::TensorOptions(), o).x;
    const auto mean_x = batch_mean(x), std_x = batch_std(x);
    std::printf(
        "[ measured ] guidance w=%.0f: mean (%.4f, %.4f) vs (%.4f, %.4f), std (%.4f, %.4f) "
        "vs %.4f; t=0 tilt std %.4f\n",
        w, mean_x[0].item<double>(), mean_x[1].item<double>(), mean[0], mean[1],
        std_x[0].item<double>(), std_x[1].item<double>(), std::sqrt(out_var), tilt_std);
    // Standard errors <= 0.005 (mean), 0.0036 (std): 0.02 is 4 of them.
    for (int d = 0; d < 2; ++d) {
      EXPECT_NEAR(mean_x[d].item<double>(), mean[d], 0.02) << "w=" << w;
      EXPECT_NEAR(std_x[d].item<double>(), std::sqrt(out_var), 0.02) << "w=" << w;
    }
    EXPECT_LT(std::sqrt(out_var), previous_std);
    previous_std = std::sqrt(out_var);
  }
}

// Three separated classes N(m_k, s^2 I), m_k at radius 3, s = 0.4, under the
// VP SDE; class k is component k of the null model's mixture (label 3).
struct ThreeClasses {
  std::shared_ptr<Sde> sde = make(SdeKind::kVP);
  double s = 0.4;
  torch::Tensor means;  // [3, 2]
  std::shared_ptr<ClassAnalyticNetImpl> net;
  ThreeClasses() {
    const double pi = std::acos(-1.0);
    std::vector<AnalyticScoreNet> nets;
    std::vector<torch::Tensor> centers;
    for (int k = 0; k < 3; ++k) {
      const double angle = pi / 2 + 2 * pi * k / 3;
      centers.push_back(torch::tensor({3 * std::cos(angle), 3 * std::sin(angle)}, torch::kFloat));
      nets.push_back(make_analytic_gaussian(sde, true, centers.back(), s));
    }
    means = torch::stack(centers);
    nets.push_back(make_analytic_mixture(sde, true, means, torch::ones({3}), s));
    net = std::make_shared<ClassAnalyticNetImpl>(nets);
  }
  // The fraction of samples x [N, 2] nearest their class's mean, and their
  // rms distance per coordinate to it.
  double on_class(const torch::Tensor& x, const torch::Tensor& labels) const {
    return (torch::cdist(x, means).argmin(1) == labels).to(torch::kDouble).mean().item<double>();
  }
  double spread(const torch::Tensor& x, const torch::Tensor& labels) const {
    return std::sqrt(
        ((x - means.index_select(0, labels)).norm(2, 1).pow(2).mean() / 2).item<double>());
  }
};

// Three separated classes, class k = component k of the null model's mixture:
// guided samples must land on their class's component for w = 0 and w > 0.
TEST(GuidanceTest, MixtureSamplesLandOnTheirClass) {
  const ThreeClasses classes;
  const auto& sde = classes.sde;
  const auto& net = classes.net;
  const double s = classes.s;
  const int64_t n = 3000;
  const auto labels = torch::arange(n, torch::kLong) % 3;
  PCOptions o;
  o.num_steps = 300;
  for (double w : {0.0, 2.0}) {
    torch::manual_seed(7);
    auto x = pc_sample(*sde, make_guided_score_fn(net, sde, true, labels, 3, w), {n, 2},
                       torch::TensorOptions(), o)
                 .x;
    const double on_class = classes.on_class(x, labels);
    std::printf(
        "[ measured ] guidance mixture w=%.0f: fraction on class %.4f, "
        "rms distance per coordinate to the class mean %.4f (data %.2f)\n",
        w, on_class, classes.spread(x, labels), s);
    EXPECT_GE(on_class, 0.99) << "w=" << w;
  }
}

// The multistep samplers take the guided score like every other sampler: at
// 20 NFE, DPM-Solver++ 2M and UniPC-2 put unguided and guided samples on
// their class, and guidance moves them (the same latents: both deterministic).
TEST(GuidanceTest, MultistepSamplersFollowTheGuidedScore) {
  const ThreeClasses classes;
  const auto& sde = classes.sde;
  const auto& net = classes.net;
  const double s = classes.s;
  const int64_t n = 3000;
  const auto labels = torch::arange(n, torch::kLong) % 3;
  for (const bool unipc : {false, true}) {
    torch::Tensor unguided;
    for (double w : {0.0, 2.0}) {
      torch::manual_seed(8);
      auto score = make_guided_score_fn(net, sde, true, labels, 3, w);
      torch::Tensor x;
      if (unipc) {
        UniPcOptions o;
        o.num_steps = 20;
        x = unipc_sample(*sde, score, {n, 2}, torch::TensorOptions(), o).x;
      } else {
        DpmSolverOptions o;
        o.num_steps = 20;
        x = dpm_solver_pp_sample(*sde, score, {n, 2}, torch::TensorOptions(), o).x;
      }
      x = x.to(torch::kFloat);
      const double on_class = classes.on_class(x, labels);
      const double spread = classes.spread(x, labels);
      std::printf("[ measured ] %s guidance w=%.0f: on class %.4f, rms distance %.4f (data %.2f)\n",
                  unipc ? "unipc-2" : "dpm_solver_pp 2M", w, on_class, spread, s);
      EXPECT_GE(on_class, 0.99) << "w=" << w;
      if (w == 0) {
        EXPECT_NEAR(spread, s, 0.05);  // unguided: the class's own spread
        unguided = x;
      } else {
        const double moved = (x - unguided).norm(2, 1).mean().item<double>();
        std::printf("[ measured ] mean |x_w - x_0| %.4f\n", moved);
        EXPECT_GT(moved, 0.05);
      }
    }
  }
}

}  // namespace
}  // namespace scorch
