// The numerical core of the sample-quality metrics, computed from features
// the caller has already extracted (Inception pool3, logits, ...):
//   FID  Heusel et al. 2017, "GANs trained by a two time-scale update rule"
//   IS   Salimans et al. 2016, "Improved techniques for training GANs"
//   KID  Binkowski et al. 2018, "Demystifying MMD GANs"
//   P&R  Kynkaanniemi et al. 2019, "Improved precision and recall metric"
// Definitions, conventions and known answers follow the reference tools
// (pytorch-fid, torch-fidelity, clean-fid, EDM, StyleGAN, guided-diffusion,
// tfgan).
//
//   FeatureStats real(2048), fake(2048);
//   for (auto& batch : real_batches) real.update(extract(batch));   // [n, 2048]
//   auto packed = fake.pack(); comm->all_reduce_sum(packed);          // every rank
//   fake = FeatureStats::unpack(packed, 2048);
//   double fid = frechet_distance(real, fake);
//   InceptionScore is = inception_score(logits);                      // [N, 1008]
//   MeanStd kid = kernel_inception_distance(real_features, fake_features);
//   PrecisionRecall pr = precision_recall(real_features, fake_features);
//
// Thread safety: the free functions are pure; a FeatureStats is not safe to
// update from two threads at once.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace scorch {

// ---------------------------------------------------------------- FID

// Streaming first and second moments of d-dimensional features, in float64
// (EDM fid.py): count N, S1 = sum_i f_i [d] and S2 = sum_i f_i f_i^T [d, d].
// The raw sums add across batches and ranks, so ranks all-reduce pack() and
// every rank then holds the statistics of the whole set; the result does not
// depend on how the set was split (up to float64 rounding).
class FeatureStats {
 public:
  // Empty statistics of `dim`-dimensional features, accumulated on `device`
  // (the GPU of the extractor, or the CPU).
  explicit FeatureStats(int64_t dim, torch::Device device = torch::kCPU);

  // Adds a batch: features [n, dim], any floating dtype and device (converted
  // to float64 on this object's device). n may be 0.
  void update(const torch::Tensor& features);

  // Adds another's sums (another shard of the same feature set).
  // REQUIRES: other.dim() == dim().
  void merge(const FeatureStats& other);

  // mu = S1 / N, [dim] float64. REQUIRES: count() >= 1.
  torch::Tensor mean() const;

  // Unbiased (N-1) covariance, Sigma = (S2 - N mu mu^T) / (N - 1), [dim, dim]
  // float64, as np.cov(f, rowvar=False) in pytorch-fid, torch-fidelity and
  // clean-fid (StyleGAN's ddof=0 is the exception). REQUIRES: count() >= 2.
  // S2 - N mu mu^T cancels when |mu| >> the spread; in float64 that costs
  // ~1e-16 |mu|^2 absolute, harmless for Inception features.
  torch::Tensor covariance() const;

  // [1 + dim + dim^2] float64 on device(): N, S1, then S2 row-major. Summing
  // the packs of several stats (an all-reduce) gives the pack of their merge.
  torch::Tensor pack() const;
  static FeatureStats unpack(const torch::Tensor& packed, int64_t dim);

  int64_t dim() const { return dim_; }
  double count() const { return count_; }
  const torch::Tensor& sum() const { return sum_; }              // S1 [dim]
  const torch::Tensor& sum_outer() const { return sum_outer_; }  // S2 [dim, dim]
  torch::Device device() const { return sum_.device(); }

 private:
  int64_t dim_;
  double count_ = 0;
  torch::Tensor sum_;        // [dim] float64
  torch::Tensor sum_outer_;  // [dim, dim] float64
};

// Tr((Sigma1 Sigma2)^{1/2}) for symmetric PSD Sigma1, Sigma2 [d, d], in
// float64 without a complex matrix square root:
//   A = Sigma1^{1/2} = V sqrt(max(L, 0)) V^T   from eigh(Sigma1) = V L V^T,
//   Tr((Sigma1 Sigma2)^{1/2}) = sum_i sqrt(max(l_i, 0)),  l = eigvalsh(A Sigma2 A).
// Why this is what scipy.linalg.sqrtm(Sigma1 @ Sigma2).trace() computes
// (pytorch-fid, clean-fid, guided-diffusion): with X = A and Y = A Sigma2,
// Sigma1 Sigma2 = XY and A Sigma2 A = YX, and XY and YX have the same
// eigenvalues (counted with multiplicity, singular Sigma1 included). A Sigma2 A
// is symmetric PSD, so those eigenvalues are real and >= 0, and the principal
// square root sqrtm returns has eigenvalues sqrt(l_i), whose sum is its trace.
// Eigenvalues that rounding pushes below 0 contribute 0, as the real part of
// sqrt(complex l) does in torch-fidelity and `.real` does in pytorch-fid; so
// do those at rounding level, l <= d eps max(l) (numpy's matrix_rank
// tolerance), whose roots would otherwise sum to ~d 1e-8 sqrt(max l) of noise
// over the null space of a rank-deficient covariance. Unlike sqrtm on the
// non-symmetric product this never fails on singular covariances (N < d),
// so no eps retry is needed.
// Inputs are symmetrised ((S + S^T)/2) first; any float dtype and device.
double trace_sqrt_product(const torch::Tensor& sigma1, const torch::Tensor& sigma2);

// Frechet distance between N(mu1, Sigma1) and N(mu2, Sigma2), float64:
//   d^2 = |mu1 - mu2|^2 + Tr Sigma1 + Tr Sigma2 - 2 Tr((Sigma1 Sigma2)^{1/2}).
// mu [d], sigma [d, d]. Not clamped at 0 (rounding can give -1e-12 for equal
// statistics), like every reference.
double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1,
                        const torch::Tensor& mu2, const torch::Tensor& sigma2);

// FID of two feature sets' statistics. REQUIRES: count() >= 2 on both.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// ---------------------------------------------------------------- IS

struct MeanStd {
  double mean = 0;
  double std = 0;  // population std (np.std, ddof 0) over splits or subsets
};
using InceptionScore = MeanStd;

enum class ClassifierOutput {
  kLogits,         // unnormalised log-probabilities (softmax taken here)
  kProbabilities,  // rows of p(y|x) that sum to 1
};

struct InceptionScoreOptions {
  // Contiguous splits, split s = rows [s N / splits, (s+1) N / splits) with
  // integer division (torch-fidelity, StyleGAN is50k: 10). 1 = one split over
  // all samples, as tfgan's classifier_score_from_logits (score_sde).
  // No shuffle: torch-fidelity permutes with numpy's RandomState(2020) first,
  // StyleGAN does not; shuffle the rows beforehand to emulate it.
  int64_t splits = 10;
  ClassifierOutput input = ClassifierOutput::kLogits;
};

// IS = exp(mean_x KL(p(y|x) || p_hat(y))) with p_hat the mean of p(y|x) over
// the split, natural log, float64; the mean and np.std over the splits.
// outputs [N, C] (logits: all 1008 Inception outputs without bias, as
// torch-fidelity, StyleGAN and guided-diffusion take them).
// REQUIRES: N >= splits >= 1.
InceptionScore inception_score(const torch::Tensor& outputs,
                               const InceptionScoreOptions& options = {});

// ---------------------------------------------------------------- KID

struct KidOptions {
  int64_t num_subsets = 100;   // torch-fidelity kid_subsets
  int64_t subset_size = 1000;  // clamped to min(N1, N2) (clean-fid, StyleGAN)
  int64_t degree = 3;          // kernel k(x, y) = (gamma x.y + coef0)^degree
  double gamma = 0;            // <= 0: 1 / feature dimension
  double coef0 = 1;
  uint64_t seed = 2020;  // subsets drawn from a CPU generator with this seed
};

// Unbiased MMD^2 (torch-fidelity metric_kid.py mmd2, mmd_est="unbiased") of
// two equal-size sets x, y [m, d] under the polynomial kernel:
//   MMD^2 = (sum_{i!=j} Kxx + sum_{i!=j} Kyy) / (m (m-1)) - 2 sum_{i,j} Kxy / m^2
// (Kxy keeps its diagonal). float64 on the inputs' device (the references use
// the feature dtype, float32 in practice). REQUIRES: m >= 2.
double polynomial_mmd2_unbiased(const torch::Tensor& x, const torch::Tensor& y,
                                const KidOptions& options = {});

// KID: polynomial_mmd2_unbiased over num_subsets pairs of subsets, each pair
// m = min(subset_size, N1, N2) rows of `features1` drawn without replacement,
// then m rows of `features2` (a fresh permutation each); the mean and np.std.
// features [N1, d], [N2, d]. Reproducible for a given seed; the references use
// numpy's RNG, so individual subsets differ from theirs.
MeanStd kernel_inception_distance(const torch::Tensor& features1, const torch::Tensor& features2,
                                  const KidOptions& options = {});

// ---------------------------------------------------------------- P&R

struct PrecisionRecallOptions {
  int64_t k = 3;              // neighbourhood size (nhood_sizes=(3,))
  int64_t block_size = 8192;  // rows and columns per distance block
  // Distances are computed as max(|u|^2 - 2 u.v + |v|^2, 0) in this dtype
  // (guided-diffusion: float16 on the GPU; float32 is ample for pool3).
  torch::ScalarType dtype = torch::kFloat;
};

// Squared distance from each row of features [N, d] to its k-th nearest other
// row: the (k+1)-th smallest of the row's squared distances with the self
// distance (0) included, as np.partition(...)[:, k] in guided-diffusion and
// kthvalue(k+1) in torch-fidelity; duplicates of a row count as neighbours.
// [N] in options.dtype, on the features' device. Memory O(block_size^2).
// REQUIRES: N > k.
torch::Tensor knn_radii_sq(const torch::Tensor& features,
                           const PrecisionRecallOptions& options = {});

struct PrecisionRecall {
  double precision = 0;  // generated samples inside the real manifold
  double recall = 0;     // real samples inside the generated manifold
};

// Improved precision and recall (Kynkaanniemi et al. 2019, eq. 1-3):
//   precision = mean_{g in gen} 1[exists r: |g - r|^2 <= radius_real(r)^2],
//   recall    = mean_{r in real} 1[exists g: |r - g|^2 <= radius_gen(g)^2],
// radii from knn_radii_sq within each set (ties count as inside). real [N, d],
// generated [M, d], any float dtype, computed on real's device. Each
// real x generated distance block is computed once and serves both
// directions; 50k x 50k needs O(block_size^2) memory, not O(N M).
// REQUIRES: N > k, M > k.
PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& generated,
                                 const PrecisionRecallOptions& options = {});

}  // namespace scorch
