// Sliced Wasserstein-1 distance and unbiased Gaussian-kernel MMD^2.
#include "eval/sample_distance.h"

#include "core/compat.h"

namespace scorch {

double sliced_wasserstein(const torch::Tensor& x, const torch::Tensor& y, int64_t num_projections,
                          at::Generator gen) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2 && x.sizes() == y.sizes(),
              "sliced_wasserstein expects two [N, D] sets of equal size, got ", x.sizes(), " and ",
              y.sizes());
  auto theta = compat::randn({x.size(1), num_projections}, gen, torch::kDouble);
  theta = theta / theta.norm(2, 0, true);
  auto px = std::get<0>(torch::sort(x.to(torch::kCPU, torch::kDouble).matmul(theta), 0));
  auto py = std::get<0>(torch::sort(y.to(torch::kCPU, torch::kDouble).matmul(theta), 0));
  return (px - py).abs().mean().item<double>();
}

double mmd2_unbiased(const torch::Tensor& x, const torch::Tensor& y, double bandwidth) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(1) == y.size(1) && x.size(0) > 1 &&
                  y.size(0) > 1,
              "mmd2_unbiased expects [N, D] and [M, D] with N, M > 1");
  auto a = x.to(torch::kCPU, torch::kDouble), b = y.to(torch::kCPU, torch::kDouble);
  auto kernel = [&](const torch::Tensor& p, const torch::Tensor& q) {
    return torch::exp(-torch::cdist(p, q).pow(2) / (2 * bandwidth * bandwidth));
  };
  const double n = static_cast<double>(a.size(0)), m = static_cast<double>(b.size(0));
  // Off-diagonal means for the within-set terms (the diagonal is k = 1).
  const double kxx = (kernel(a, a).sum().item<double>() - n) / (n * (n - 1));
  const double kyy = (kernel(b, b).sum().item<double>() - m) / (m * (m - 1));
  const double kxy = kernel(a, b).mean().item<double>();
  return kxx + kyy - 2 * kxy;
}

}  // namespace scorch
