// FID, IS, KID and precision/recall against the known answers of the
// reference tools' own tests (pytorch-fid, tfgan, torch-fidelity), closed
// forms, and values of the reference tools' formulas on fixed fixtures
// (provenance at each constant).
#include "eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "core/compat.h"  // defines: cpu_generator, randn, rand
#include "core/rng.h"     // defines: mix64

namespace scorch {
namespace {

const auto kF64 = torch::kDouble;

// ------------------------------------------------------------- fixtures
// Reproducible bit for bit in any language: u(salt, i) = (mix64(salt 2^32 + i)
// >> 11) 2^-53 in [0, 1), then only exactly rounded elementwise arithmetic.
// The reference values below were computed from the same fixtures in float64
// with scipy 1.10.1 / numpy 1.24.2 / torch 1.13, transcribing the reference
// functions named at each value (not committed).
double u(uint64_t salt, uint64_t i) {
  return static_cast<double>(mix64((salt << 32) + i) >> 11) * 0x1p-53;
}

torch::Tensor grid(uint64_t salt, int64_t n, int64_t d) {
  auto t = torch::empty({n, d}, kF64);
  auto a = t.accessor<double, 2>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) a[i][j] = u(salt, static_cast<uint64_t>(i * d + j));
  return t;
}

// x_ij = a_ij + 0.7 a_i,(j+1)%d: correlated neighbouring features.
torch::Tensor features_x(int64_t n, int64_t d) {
  auto a = grid(1, n, d);
  return a + 0.7 * torch::roll(a, -1, 1);
}

// y_ij = 1.5 b_ij^2 - 0.3 b_i,(j+3)%d + 0.05 j: another law, skewed and shifted.
torch::Tensor features_y(int64_t n, int64_t d) {
  auto b = grid(2, n, d);
  return b * b * 1.5 - 0.3 * torch::roll(b, -3, 1) + 0.05 * torch::arange(d, kF64).unsqueeze(0);
}

FeatureStats stats_of(const torch::Tensor& f) {
  FeatureStats s(f.size(1));
  s.update(f);
  return s;
}

void expect_rel(double actual, double expected, double rel) {
  EXPECT_NEAR(actual, expected, rel * std::abs(expected)) << "expected " << expected;
}

// ------------------------------------------------------------- FeatureStats

TEST(MetricsFeatureStats, PytorchFidMockImages) {
  // pytorch-fid's test_compute_statistics_of_path: images of
  // 0, 127 and 255 whose features are their per-channel means in [0, 1].
  // [derived] mu = 0.4993464052287582, Sigma = 0.250001281558375 (ddof 1).
  const double v = 127.0 / 255.0;
  auto f = torch::tensor({0.0, 0.0, 0.0, v, v, v, 1.0, 1.0, 1.0}, kF64).reshape({3, 3});
  const auto s = stats_of(f);
  EXPECT_EQ(s.count(), 3);
  EXPECT_TRUE(torch::allclose(s.mean(), torch::full({3}, 0.4993464052287582, kF64), 0, 1e-15));
  EXPECT_TRUE(
      torch::allclose(s.covariance(), torch::full({3, 3}, 0.250001281558375, kF64), 0, 1e-15));
  // float32 features (as the extractor returns) pass pytorch-fid's own check.
  const auto s32 = stats_of(f.to(torch::kFloat));
  EXPECT_TRUE(torch::allclose(s32.mean(), torch::full({3}, 0.5, kF64), 0, 1e-3));
  EXPECT_TRUE(torch::allclose(s32.covariance(), torch::full({3, 3}, 0.25, kF64)));
}

TEST(MetricsFeatureStats, MatchesNumpyCov) {
  // np.mean(x, 0) and np.cov(x, rowvar=False) of the fixture (pytorch-fid's
  // calculate_activation_statistics).
  const auto s = stats_of(features_x(400, 32));
  expect_rel(s.mean()[0].item<double>(), 0.84988444105772876, 1e-13);
  expect_rel(s.covariance().trace().item<double>(), 4.0340897916542904, 1e-12);
  expect_rel(s.covariance()[0][1].item<double>(), 0.053754372965324849, 1e-11);
  expect_rel(stats_of(features_y(300, 32)).covariance()[2][5].item<double>(), -0.043141139331746188,
             1e-11);
}

TEST(MetricsFeatureStats, StreamingAndMergedEqualOneShot) {
  const auto x = features_x(400, 32);
  const auto one_shot = stats_of(x);
  // Three "ranks" with uneven batches (one empty), merged, and the same
  // through pack / sum / unpack as an all-reduce would do it.
  FeatureStats a(32), b(32), c(32);
  a.update(x.slice(0, 0, 7));
  a.update(x.slice(0, 7, 7));
  b.update(x.slice(0, 7, 50));
  b.update(x.slice(0, 50, 107));
  c.update(x.slice(0, 107, 400));
  const auto packed = a.pack() + b.pack() + c.pack();
  FeatureStats merged = a;
  merged.merge(b);
  merged.merge(c);
  for (const auto& s : {merged, FeatureStats::unpack(packed, 32)}) {
    EXPECT_EQ(s.count(), 400);
    EXPECT_TRUE(torch::allclose(s.mean(), one_shot.mean(), 1e-14, 0));
    // Sums of 400 float64 products of order 1, accumulated in other orders
    // (and by another BLAS with LibTorch 2.x): entries near zero agree to
    // about 400 ulp(1), 1e-13.
    EXPECT_TRUE(torch::allclose(s.covariance(), one_shot.covariance(), 1e-12, 1e-13));
    EXPECT_NEAR(frechet_distance(s, one_shot), 0.0, 1e-12);
  }
  EXPECT_THROW(a.update(torch::zeros({2, 31})), c10::Error);
  EXPECT_THROW(FeatureStats(32).covariance(), c10::Error);
}

// ------------------------------------------------------------- FID

TEST(MetricsFid, PytorchFid2048) {
  // pytorch-fid's test_calculate_fid_given_statistics.
  const int64_t d = 2048;
  const auto eye = torch::eye(d, kF64);
  EXPECT_NEAR(frechet_distance(torch::zeros({d}, kF64), eye, torch::ones({d}, kF64), eye), 2048.0,
              1e-9);
}

TEST(MetricsFid, ZeroForIdenticalStatsAndSymmetric) {
  const auto sx = stats_of(features_x(400, 32)), sy = stats_of(features_y(300, 32));
  EXPECT_NEAR(frechet_distance(sx, sx), 0.0, 1e-12);
  expect_rel(frechet_distance(sx, sy), frechet_distance(sy, sx), 1e-12);
}

TEST(MetricsFid, MatchesScipySqrtm) {
  // pytorch-fid calculate_frechet_distance (scipy.linalg.sqrtm of Sigma1
  // Sigma2) on the fixture: FID 10.818502286796676, Tr sqrt 4.5987931844697858.
  const auto sx = stats_of(features_x(400, 32)), sy = stats_of(features_y(300, 32));
  expect_rel(frechet_distance(sx, sy), 10.818502286796676, 1e-12);
  expect_rel(trace_sqrt_product(sx.covariance(), sy.covariance()), 4.5987931844697858, 1e-12);
}

TEST(MetricsFid, DiagonalCovariancesClosedForm) {
  // [derived] both diagonal -> |dmu|^2 + sum (sqrt a_i - sqrt b_i)^2.
  auto gen = compat::cpu_generator(11);
  const int64_t d = 64;
  const auto a = compat::rand({d}, gen, kF64) * 3 + 0.01, b = compat::rand({d}, gen, kF64) * 2;
  const auto mu1 = compat::randn({d}, gen, kF64), mu2 = compat::randn({d}, gen, kF64);
  const double expected =
      ((mu1 - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum()).item<double>();
  expect_rel(frechet_distance(mu1, torch::diag(a), mu2, torch::diag(b)), expected, 1e-11);
}

TEST(MetricsFid, ScaledCovarianceClosedForm) {
  // [derived] Sigma2 = c^2 Sigma1 -> |dmu|^2 + (1-c)^2 Tr Sigma1,
  // with a dense Sigma1 = W W^T / d.
  auto gen = compat::cpu_generator(12);
  const int64_t d = 48;
  const auto w = compat::randn({d, d}, gen, kF64);
  const auto s1 = w.matmul(w.t()) / d;
  const auto mu1 = compat::randn({d}, gen, kF64), mu2 = compat::randn({d}, gen, kF64);
  for (double c : {0.0, 0.6, 1.0, 2.5}) {
    const double expected =
        ((mu1 - mu2).pow(2).sum() + (1 - c) * (1 - c) * s1.trace()).item<double>();
    EXPECT_NEAR(frechet_distance(mu1, s1, mu2, c * c * s1), expected, 1e-10 * (1 + expected))
        << "c = " << c;
  }
}

TEST(MetricsFid, RankDeficientCovariances) {
  // Sigma1 = a a^T, Sigma2 = b b^T: Sigma1 Sigma2 = (a.b) a b^T has the one
  // nonzero eigenvalue (a.b)^2, so FID = |dmu|^2 + |a|^2 + |b|^2 - 2 |a.b|,
  // where sqrtm of the singular product needs pytorch-fid's eps retry. Without
  // the rounding-level eigenvalue cut the error here was 6e-9 relative.
  auto gen = compat::cpu_generator(13);
  const int64_t d = 256;
  const auto a = compat::randn({d}, gen, kF64), b = compat::randn({d}, gen, kF64);
  const auto mu = torch::zeros({d}, kF64);
  const double ab = a.dot(b).item<double>();
  const double expected = (a.dot(a) + b.dot(b)).item<double>() - 2 * std::abs(ab);
  expect_rel(frechet_distance(mu, torch::outer(a, a), mu, torch::outer(b, b)), expected, 1e-12);
  // torch-fidelity's NaN trap (its test_fid_stats_fn.py): N = 2 samples in d = 256.
  for (int64_t n : {2, 4, 16}) {
    const auto s1 = stats_of(compat::randn({n, d}, gen)), s2 = stats_of(compat::randn({n, d}, gen));
    const double fid = frechet_distance(s1, s2);
    EXPECT_TRUE(std::isfinite(fid)) << "n = " << n;
    EXPECT_GT(fid, 0) << "n = " << n;
  }
}

// ------------------------------------------------------------- IS

// Logits [53, 7]: 4 (u - 1/2), plus 2 on class i % 7 so the classes differ.
torch::Tensor is_logits() {
  auto bump = (torch::arange(7).unsqueeze(0) == (torch::arange(53) % 7).unsqueeze(1)).to(kF64);
  return 4 * (grid(3, 53, 7) - 0.5) + 2 * bump;
}

TEST(MetricsInceptionScore, TfganOneSplit) {
  // tfgan's test_classifier_score_from_logits_value: logits
  // [1,2]*500+[4] and [4,5]*500+[6], one split: IS = 1.0008087798617324.
  std::vector<double> rows;
  for (auto [first, last] : {std::pair{1.0, 4.0}, std::pair{4.0, 6.0}}) {
    for (int i = 0; i < 500; ++i) rows.push_back(first), rows.push_back(first + 1);
    rows.push_back(last);
  }
  const auto logits = torch::tensor(rows, kF64).reshape({2, 1001});
  InceptionScoreOptions one;
  one.splits = 1;
  const auto is = inception_score(logits, one);
  EXPECT_NEAR(is.mean, 1.0008087798617324, 1e-14);
  EXPECT_EQ(is.std, 0.0);
  // float32 logits are converted to float64 first, as tfgan does.
  EXPECT_NEAR(inception_score(logits.to(torch::kFloat), one).mean, 1.0008087798617324, 1e-7);
}

TEST(MetricsInceptionScore, MatchesTorchFidelity) {
  // torch-fidelity isc_features_to_metric(shuffle=False) on is_logits():
  // 10 splits (sizes 5 and 6 from s N // 10) and one split.
  const auto logits = is_logits();
  const auto ten = inception_score(logits);
  expect_rel(ten.mean, 1.8003658919767696, 1e-12);
  expect_rel(ten.std, 0.29354064874584174, 1e-11);
  InceptionScoreOptions one;
  one.splits = 1;
  const auto single = inception_score(logits, one);
  expect_rel(single.mean, 1.8860954530639389, 1e-12);
  EXPECT_EQ(single.std, 0.0);
  // The same classifier given as probabilities.
  InceptionScoreOptions probs;
  probs.input = ClassifierOutput::kProbabilities;
  const auto from_probs = inception_score(torch::softmax(logits, 1), probs);
  expect_rel(from_probs.mean, ten.mean, 1e-13);
  expect_rel(from_probs.std, ten.std, 1e-11);
}

TEST(MetricsInceptionScore, OneHotSplitSizes) {
  // One-hot p(y|x) with every label distinct within a split of s samples:
  // p_hat is uniform over s labels, each KL = log s, so IS = s exactly. With
  // N = 25 and 10 splits the boundaries s N // 10 give sizes 2,3,2,3,...:
  // mean 2.5, std 0.5 (ceil-sized chunks 3,...,3,1 would give something else).
  const auto probs = torch::eye(25, kF64);
  InceptionScoreOptions o;
  o.input = ClassifierOutput::kProbabilities;
  const auto is = inception_score(probs, o);
  EXPECT_NEAR(is.mean, 2.5, 1e-13);
  EXPECT_NEAR(is.std, 0.5, 1e-13);
  // 100 samples of 10 classes in turn: every split holds each class once.
  const auto cycle = torch::eye(10, kF64).repeat({10, 1});
  const auto is10 = inception_score(cycle, o);
  EXPECT_NEAR(is10.mean, 10.0, 1e-12);
  EXPECT_NEAR(is10.std, 0.0, 1e-12);
  o.splits = 26;
  EXPECT_THROW(inception_score(probs, o), c10::Error);
}

// ------------------------------------------------------------- KID

TEST(MetricsKid, AnalyticTwoPoints) {
  // [derived] d = 2, X = {(1,0),(0,1)}, Y = {(1,1),(0,0)},
  // gamma = 1/2 -> MMD^2 = -2.375. Subsets clamp to m = 2: every subset is
  // the whole set, so the std is 0.
  const auto x = torch::tensor({1.0, 0.0, 0.0, 1.0}, kF64).reshape({2, 2});
  const auto y = torch::tensor({1.0, 1.0, 0.0, 0.0}, kF64).reshape({2, 2});
  EXPECT_DOUBLE_EQ(polynomial_mmd2_unbiased(x, y), -2.375);
  const auto kid = kernel_inception_distance(x, y);
  EXPECT_DOUBLE_EQ(kid.mean, -2.375);
  EXPECT_NEAR(kid.std, 0.0, 1e-15);
}

TEST(MetricsKid, MatchesTorchFidelityOnFullSets) {
  // torch-fidelity polynomial_mmd + mmd2(unbiased), float64, on 40 x 8 sets:
  // 0.93189109532998415. subset_size 1000 clamps to 40, so each of the 100
  // subsets is a permutation of the full sets and gives that value.
  const auto x = features_x(40, 8), y = features_y(40, 8);
  expect_rel(polynomial_mmd2_unbiased(x, y), 0.93189109532998415, 1e-12);
  const auto kid = kernel_inception_distance(x, y);
  expect_rel(kid.mean, 0.93189109532998415, 1e-12);
  EXPECT_LT(kid.std, 1e-13);
}

TEST(MetricsKid, SubsetsSeededClampedAndUnbiased) {
  const auto x = features_x(60, 8), y = features_y(45, 8);
  KidOptions o;
  o.num_subsets = 20;
  const auto clamped = kernel_inception_distance(x, y, o);  // m = min(1000, 60, 45)
  o.subset_size = 45;
  const auto explicit45 = kernel_inception_distance(x, y, o);
  EXPECT_EQ(clamped.mean, explicit45.mean);
  EXPECT_EQ(clamped.std, explicit45.std);
  EXPECT_GT(clamped.std, 0);  // x subsets differ
  o.seed = 7;
  EXPECT_NE(kernel_inception_distance(x, y, o).mean, clamped.mean);

  // The Kxx, Kyy terms are U-statistics and Kxy pairs independent subsets,
  // so the subset estimate's expectation is the full-set value (N1 = N2 = 40)
  // 0.93189109532998415 (above): the mean of many subsets of 20 lands within
  // Monte Carlo error of it.
  const auto x40 = features_x(40, 8), y40 = features_y(40, 8);
  KidOptions small;
  small.subset_size = 20;
  small.num_subsets = 4000;
  const auto kid = kernel_inception_distance(x40, y40, small);
  EXPECT_NEAR(kid.mean, 0.93189109532998415, 4 * kid.std / std::sqrt(4000.0));
}

// ------------------------------------------------------------- P&R

// Points on a line, embedded in 3-D: [n] -> [n, 3].
torch::Tensor on_line(const std::vector<double>& t) {
  auto x = torch::zeros({static_cast<int64_t>(t.size()), 3}, kF64);
  x.select(1, 0).copy_(torch::tensor(t, kF64));
  return x;
}

TEST(MetricsPrecisionRecall, HandComputedLine) {
  // real {0..6}: 3rd-neighbour distances 3,2,2,2,2,2,3. generated: a cluster
  // {0, .5, 1, 1.5} (radii 1.5, 1, 1, 1.5) near the real points and a copy of
  // it at 100 far away. Precision: the near cluster lies in real 0's ball, the
  // far one in none -> 4/8. Recall: reals 0, 1, 2 and 3 lie in generated
  // balls, 3 exactly on the boundary of 1.5's (|3 - 1.5| = 1.5, closed
  // balls) -> 4/7. All squared distances are exact in float32 and float64.
  const auto real = on_line({0, 1, 2, 3, 4, 5, 6});
  const auto gen = on_line({0, 0.5, 1, 1.5, 100, 100.5, 101, 101.5});
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    for (int64_t block : {1, 3, 8192}) {
      PrecisionRecallOptions o;
      o.dtype = dtype;
      o.block_size = block;
      EXPECT_TRUE(torch::equal(knn_radii_sq(real, o).to(kF64),
                               torch::tensor({9.0, 4.0, 4.0, 4.0, 4.0, 4.0, 9.0}, kF64)));
      EXPECT_TRUE(torch::equal(knn_radii_sq(gen, o).to(kF64),
                               torch::tensor({2.25, 1.0, 1.0, 2.25, 2.25, 1.0, 1.0, 2.25}, kF64)));
      const auto pr = precision_recall(real, gen, o);
      EXPECT_EQ(pr.precision, 0.5) << "block " << block;
      EXPECT_EQ(pr.recall, 4.0 / 7.0) << "block " << block;
    }
  }
}

TEST(MetricsPrecisionRecall, IdenticalSubsetAndDisjointSets) {
  auto gen = compat::cpu_generator(21);
  const auto x = compat::randn({300, 16}, gen);
  const auto same = precision_recall(x, x);
  EXPECT_EQ(same.precision, 1.0);
  EXPECT_EQ(same.recall, 1.0);
  // Generated samples that are real samples lie in their own balls.
  EXPECT_EQ(precision_recall(x, x.slice(0, 0, 50)).precision, 1.0);
  // Two tight clusters 1000 apart: neither reaches the other.
  const auto far = compat::randn({200, 16}, gen) + 1000;
  const auto apart = precision_recall(x, far);
  EXPECT_EQ(apart.precision, 0.0);
  EXPECT_EQ(apart.recall, 0.0);
}

TEST(MetricsPrecisionRecall, TorchFidelityConvention) {
  // torch-fidelity's test_prc_convention: torch seed 42, gen
  // randn(200,16) 0.1, real randn(200,16) 3 -> P > 0.8, R < 0.3. The
  // guided-diffusion definition in float64 on these tensors gives P 1, R 0.
  auto gen = compat::cpu_generator(42);
  const auto generated = compat::randn({200, 16}, gen) * 0.1;
  const auto real = compat::randn({200, 16}, gen) * 3.0;
  const auto pr = precision_recall(real, generated);
  EXPECT_GT(pr.precision, 0.8);
  EXPECT_LT(pr.recall, 0.3);
}

TEST(MetricsPrecisionRecall, BlocksMatchFullMatrices) {
  // Blocked radii and coverage against the whole distance matrix at once
  // (cdist + kthvalue(k+1), torch-fidelity's formulation), float64.
  auto gen = compat::cpu_generator(22);
  const auto real = compat::randn({257, 8}, gen, kF64);
  const auto fake = compat::randn({190, 8}, gen, kF64) * 1.3 + 0.4;
  const auto rr = std::get<0>(torch::cdist(real, real).pow(2).kthvalue(4, 1));
  const auto fr = std::get<0>(torch::cdist(fake, fake).pow(2).kthvalue(4, 1));
  const auto d = torch::cdist(real, fake).pow(2);
  const double precision = (d <= rr.unsqueeze(1)).any(0).to(kF64).mean().item<double>();
  const double recall = (d <= fr.unsqueeze(0)).any(1).to(kF64).mean().item<double>();
  ASSERT_GT(precision, 0.2);
  ASSERT_LT(precision, 0.99);
  for (int64_t block : {16, 100, 8192}) {
    PrecisionRecallOptions o;
    o.dtype = kF64;
    o.block_size = block;
    EXPECT_TRUE(torch::allclose(knn_radii_sq(real, o), rr, 1e-10, 1e-12));
    const auto pr = precision_recall(real, fake, o);
    EXPECT_EQ(pr.precision, precision) << "block " << block;
    EXPECT_EQ(pr.recall, recall) << "block " << block;
  }
}

}  // namespace
}  // namespace scorch
