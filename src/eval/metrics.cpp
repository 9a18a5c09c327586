// FID, IS, KID and improved precision/recall from extracted features; the
// conventions (ddof, splits, estimator, radii) are those of the reference
// tools, cited per function in metrics.h.
#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/compat.h"  // defines: cpu_generator

namespace scorch {

namespace {

const auto kF64 = torch::kDouble;

MeanStd mean_and_population_std(const std::vector<double>& values) {
  MeanStd r;
  for (double v : values) r.mean += v;
  r.mean /= static_cast<double>(values.size());
  double var = 0;
  for (double v : values) var += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(var / static_cast<double>(values.size()));
  return r;
}

torch::Tensor symmetrised(const torch::Tensor& s) { return (s + s.t()) * 0.5; }

// Eigenvalues of a symmetric PSD matrix with those at rounding level, |l| <=
// d eps max|l| (numpy's matrix_rank tolerance), and the negative ones set to
// 0. Their square roots (~1e-7 sqrt(max l) each) would otherwise add up over
// the null space of a rank-deficient covariance (N < d).
torch::Tensor psd_eigenvalues(const torch::Tensor& values) {
  const double tol = values.abs().max().item<double>() * static_cast<double>(values.size(0)) *
                     std::numeric_limits<double>::epsilon();
  return torch::where(values > tol, values, torch::zeros_like(values));
}

}  // namespace

// ---------------------------------------------------------------- FID

FeatureStats::FeatureStats(int64_t dim, torch::Device device)
    : dim_(dim),
      sum_(torch::zeros({dim}, torch::TensorOptions(kF64).device(device))),
      sum_outer_(torch::zeros({dim, dim}, torch::TensorOptions(kF64).device(device))) {
  TORCH_CHECK(dim >= 1, "FeatureStats: dim must be >= 1, got ", dim);
}

void FeatureStats::update(const torch::Tensor& features) {
  TORCH_CHECK(features.dim() == 2 && features.size(1) == dim_,
              "FeatureStats::update expects features [n, ", dim_, "], got ", features.sizes());
  TORCH_CHECK(features.is_floating_point(), "FeatureStats::update expects floating features, got ",
              features.scalar_type());
  if (features.size(0) == 0) return;
  const auto x = features.to(device(), kF64);
  count_ += static_cast<double>(x.size(0));
  sum_.add_(x.sum(0));
  sum_outer_.addmm_(x.t(), x);  // S2 += x^T x
}

void FeatureStats::merge(const FeatureStats& other) {
  TORCH_CHECK(other.dim_ == dim_, "FeatureStats::merge: dimension ", other.dim_, " != ", dim_);
  count_ += other.count_;
  sum_.add_(other.sum_.to(device()));
  sum_outer_.add_(other.sum_outer_.to(device()));
}

torch::Tensor FeatureStats::mean() const {
  TORCH_CHECK(count_ >= 1, "FeatureStats::mean needs at least one sample");
  return sum_ / count_;
}

torch::Tensor FeatureStats::covariance() const {
  TORCH_CHECK(count_ >= 2, "FeatureStats::covariance needs at least two samples, have ", count_);
  const auto mu = mean();
  return (sum_outer_ - count_ * torch::outer(mu, mu)) / (count_ - 1);
}

torch::Tensor FeatureStats::pack() const {
  auto n = torch::full({1}, count_, torch::TensorOptions(kF64).device(device()));
  return torch::cat({n, sum_, sum_outer_.reshape({-1})});
}

FeatureStats FeatureStats::unpack(const torch::Tensor& packed, int64_t dim) {
  TORCH_CHECK(packed.dim() == 1 && packed.size(0) == 1 + dim + dim * dim,
              "FeatureStats::unpack: expected [", 1 + dim + dim * dim, "] for dim ", dim, ", got ",
              packed.sizes());
  const auto p = packed.to(kF64);
  FeatureStats s(dim, p.device());
  s.count_ = p[0].item<double>();
  s.sum_.copy_(p.slice(0, 1, 1 + dim));
  s.sum_outer_.copy_(p.slice(0, 1 + dim).reshape({dim, dim}));
  return s;
}

double trace_sqrt_product(const torch::Tensor& sigma1, const torch::Tensor& sigma2) {
  TORCH_CHECK(
      sigma1.dim() == 2 && sigma1.size(0) == sigma1.size(1) && sigma1.sizes() == sigma2.sizes(),
      "trace_sqrt_product expects two [d, d] matrices, got ", sigma1.sizes(), " and ",
      sigma2.sizes());
  const auto s1 = symmetrised(sigma1.to(kF64));
  const auto s2 = symmetrised(sigma2.to(s1.device(), kF64));
  // A = Sigma1^{1/2} = V sqrt(L) V^T.
  const auto eig = torch::linalg_eigh(s1, "L");
  const auto& vectors = std::get<1>(eig);
  const auto root = psd_eigenvalues(std::get<0>(eig)).sqrt();
  const auto a = (vectors * root.unsqueeze(0)).matmul(vectors.t());
  // eig(A Sigma2 A) = eig(Sigma1 Sigma2), real and >= 0 up to rounding.
  const auto m = symmetrised(a.matmul(s2).matmul(a));
  return psd_eigenvalues(torch::linalg_eigvalsh(m, "L")).sqrt().sum().item<double>();
}

double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1,
                        const torch::Tensor& mu2, const torch::Tensor& sigma2) {
  TORCH_CHECK(mu1.dim() == 1 && mu1.sizes() == mu2.sizes(),
              "frechet_distance expects two means [d], got ", mu1.sizes(), " and ", mu2.sizes());
  TORCH_CHECK(sigma1.dim() == 2 && sigma1.size(0) == mu1.size(0) && sigma1.size(1) == mu1.size(0) &&
                  sigma2.sizes() == sigma1.sizes(),
              "frechet_distance expects covariances [", mu1.size(0), ", ", mu1.size(0), "], got ",
              sigma1.sizes(), " and ", sigma2.sizes());
  const auto diff = mu1.to(kF64) - mu2.to(mu1.device(), kF64);
  const double mean_term = diff.dot(diff).item<double>();
  const double traces =
      sigma1.to(kF64).trace().item<double>() + sigma2.to(kF64).trace().item<double>();
  return mean_term + traces - 2 * trace_sqrt_product(sigma1, sigma2);
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  return frechet_distance(a.mean(), a.covariance(), b.mean(), b.covariance());
}

// ---------------------------------------------------------------- IS

InceptionScore inception_score(const torch::Tensor& outputs, const InceptionScoreOptions& options) {
  TORCH_CHECK(outputs.dim() == 2 && outputs.is_floating_point(),
              "inception_score expects floating outputs [N, C], got ", outputs.sizes());
  const int64_t n = outputs.size(0), splits = options.splits;
  TORCH_CHECK(splits >= 1 && n >= splits, "inception_score: need N >= splits >= 1, got N = ", n,
              ", splits = ", splits);
  const auto x = outputs.to(kF64);
  torch::Tensor p, p_log_p;  // p(y|x) and p log p (0 where p = 0)
  if (options.input == ClassifierOutput::kLogits) {
    const auto log_p = torch::log_softmax(x, 1);
    p = torch::softmax(x, 1);
    p_log_p = p * log_p;
  } else {
    p = x;
    p_log_p = torch::xlogy(p, p);
  }
  std::vector<double> scores;
  for (int64_t s = 0; s < splits; ++s) {
    // torch-fidelity / StyleGAN boundaries: s N // splits.
    const int64_t begin = s * n / splits, end = (s + 1) * n / splits;
    const auto part = p.slice(0, begin, end);
    const auto marginal = part.mean(0, /*keepdim=*/true);
    // KL(p || q) = sum_y p log p - p log q; xlogy keeps 0 log 0 = 0.
    const auto kl = (p_log_p.slice(0, begin, end) - torch::xlogy(part, marginal)).sum(1).mean();
    scores.push_back(std::exp(kl.item<double>()));
  }
  return mean_and_population_std(scores);
}

// ---------------------------------------------------------------- KID

double polynomial_mmd2_unbiased(const torch::Tensor& x, const torch::Tensor& y,
                                const KidOptions& options) {
  TORCH_CHECK(x.dim() == 2 && x.sizes() == y.sizes() && x.size(0) >= 2,
              "polynomial_mmd2_unbiased expects two [m, d] sets with m >= 2, got ", x.sizes(),
              " and ", y.sizes());
  const auto a = x.to(kF64), b = y.to(a.device(), kF64);
  const double m = static_cast<double>(a.size(0));
  const double gamma = options.gamma > 0 ? options.gamma : 1.0 / static_cast<double>(a.size(1));
  auto kernel = [&](const torch::Tensor& u, const torch::Tensor& v) {
    return (u.matmul(v.t()) * gamma + options.coef0).pow(options.degree);
  };
  const auto kxx = kernel(a, a), kyy = kernel(b, b);
  const double off_diagonal =
      (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()).item<double>();
  const double cross = kernel(a, b).sum().item<double>();  // diagonal kept ("unbiased")
  return off_diagonal / (m * (m - 1)) - 2 * cross / (m * m);
}

MeanStd kernel_inception_distance(const torch::Tensor& features1, const torch::Tensor& features2,
                                  const KidOptions& options) {
  TORCH_CHECK(
      features1.dim() == 2 && features2.dim() == 2 && features1.size(1) == features2.size(1),
      "kernel_inception_distance expects [N1, d] and [N2, d], got ", features1.sizes(), " and ",
      features2.sizes());
  TORCH_CHECK(options.num_subsets >= 1, "kernel_inception_distance: num_subsets must be >= 1");
  const int64_t n1 = features1.size(0), n2 = features2.size(0);
  const int64_t m = std::min({options.subset_size, n1, n2});
  TORCH_CHECK(m >= 2, "kernel_inception_distance needs subsets of >= 2 samples, got ", m);
  auto gen = compat::cpu_generator(options.seed);
  const auto device = features1.device();
  const auto f2 = features2.to(device);
  std::vector<double> values;
  for (int64_t s = 0; s < options.num_subsets; ++s) {
    // rng.choice(n, m, replace=False): the first m entries of a permutation.
    const auto i1 = at::randperm(n1, gen).slice(0, 0, m).to(device);
    const auto i2 = at::randperm(n2, gen).slice(0, 0, m).to(device);
    values.push_back(
        polynomial_mmd2_unbiased(features1.index_select(0, i1), f2.index_select(0, i2), options));
  }
  return mean_and_population_std(values);
}

// ---------------------------------------------------------------- P&R

namespace {

// max(|a_i|^2 - 2 a_i.b_j + |b_j|^2, 0) [rows of a, rows of b].
torch::Tensor squared_distances(const torch::Tensor& a, const torch::Tensor& a_norm,
                                const torch::Tensor& b, const torch::Tensor& b_norm) {
  return torch::addmm(a_norm.unsqueeze(1) + b_norm.unsqueeze(0), a, b.t(), /*beta=*/1,
                      /*alpha=*/-2)
      .clamp_min_(0);
}

void check_pr_inputs(const torch::Tensor& f, const PrecisionRecallOptions& o, const char* what) {
  TORCH_CHECK(f.dim() == 2 && f.is_floating_point(), what,
              ": expected floating features [N, d], got ", f.sizes());
  TORCH_CHECK(o.k >= 1 && f.size(0) > o.k, what, ": need more than k = ", o.k, " samples, got ",
              f.size(0));
  TORCH_CHECK(o.block_size >= 1, what, ": block_size must be >= 1");
}

}  // namespace

torch::Tensor knn_radii_sq(const torch::Tensor& features, const PrecisionRecallOptions& options) {
  check_pr_inputs(features, options, "knn_radii_sq");
  const auto x = features.to(options.dtype);
  const auto norm = x.pow(2).sum(1);
  const int64_t n = x.size(0), keep = options.k + 1, bs = options.block_size;
  auto radii = torch::empty({n}, x.options());
  for (int64_t r0 = 0; r0 < n; r0 += bs) {
    const int64_t r1 = std::min(n, r0 + bs);
    torch::Tensor smallest;  // the `keep` smallest distances seen so far, per row
    for (int64_t c0 = 0; c0 < n; c0 += bs) {
      const int64_t c1 = std::min(n, c0 + bs);
      auto d = squared_distances(x.slice(0, r0, r1), norm.slice(0, r0, r1), x.slice(0, c0, c1),
                                 norm.slice(0, c0, c1));
      if (c0 == r0) d.diagonal().zero_();  // the self distance is 0, not rounding
      if (smallest.defined()) d = torch::cat({smallest, d}, 1);
      smallest = std::get<0>(d.topk(std::min(keep, d.size(1)), 1, /*largest=*/false,
                                    /*sorted=*/false));
    }
    // Exactly `keep` columns now (n >= keep): the largest is the (k+1)-th smallest.
    radii.slice(0, r0, r1).copy_(std::get<0>(smallest.max(1)));
  }
  return radii;
}

PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& generated,
                                 const PrecisionRecallOptions& options) {
  check_pr_inputs(real, options, "precision_recall (real)");
  check_pr_inputs(generated, options, "precision_recall (generated)");
  TORCH_CHECK(real.size(1) == generated.size(1), "precision_recall: feature dimensions ",
              real.size(1), " and ", generated.size(1), " differ");
  const auto r = real.to(options.dtype);
  const auto g = generated.to(r.device(), options.dtype);
  const auto r_radii = knn_radii_sq(r, options), g_radii = knn_radii_sq(g, options);
  const auto r_norm = r.pow(2).sum(1), g_norm = g.pow(2).sum(1);
  // g_in[j]: generated j lies in some real ball (precision); r_in[i]: real i
  // lies in some generated ball (recall). One distance block serves both.
  auto r_in = torch::zeros({r.size(0)}, r.options().dtype(torch::kBool));
  auto g_in = torch::zeros({g.size(0)}, r.options().dtype(torch::kBool));
  const int64_t bs = options.block_size;
  for (int64_t i0 = 0; i0 < r.size(0); i0 += bs) {
    const int64_t i1 = std::min(r.size(0), i0 + bs);
    for (int64_t j0 = 0; j0 < g.size(0); j0 += bs) {
      const int64_t j1 = std::min(g.size(0), j0 + bs);
      const auto d = squared_distances(r.slice(0, i0, i1), r_norm.slice(0, i0, i1),
                                       g.slice(0, j0, j1), g_norm.slice(0, j0, j1));
      r_in.slice(0, i0, i1).logical_or_((d <= g_radii.slice(0, j0, j1).unsqueeze(0)).any(1));
      g_in.slice(0, j0, j1).logical_or_((d <= r_radii.slice(0, i0, i1).unsqueeze(1)).any(0));
    }
  }
  PrecisionRecall pr;
  pr.precision = g_in.to(kF64).mean().item<double>();
  pr.recall = r_in.to(kF64).mean().item<double>();
  return pr;
}

}  // namespace scorch
