// Exact scores of perturbed isotropic Gaussian mixtures (see analytic.h). With
// x_t = m x_0 + sigma z and x_0 ~ sum_k w_k N(mu_k, s^2 I), p_t is the mixture of
// N(m mu_k, v I), v = m^2 s^2 + sigma^2, whose score is -sum_k r_k(x) (x - m mu_k) / v
// with responsibilities r_k = softmax_k(ln w_k - ||x - m mu_k||^2 / (2 v)).
#include "core/device_cache.h"
#include "nn/analytic.h"

#include <cmath>
#include <utility>

#include "core/config.h"
#include "core/error.h"

namespace scorch {

AnalyticScoreNetImpl::AnalyticScoreNetImpl(std::shared_ptr<const Sde> sde, bool continuous,
                                           torch::Tensor means, torch::Tensor weights,
                                           double data_std)
    : sde_(std::move(sde)), continuous_(continuous), data_std_(data_std) {
  TORCH_CHECK(sde_, "AnalyticScoreNet: null SDE");
  TORCH_CHECK(means.dim() >= 2, "AnalyticScoreNet: means must be [K, ...], got ", means.sizes());
  TORCH_CHECK(weights.dim() == 1 && weights.size(0) == means.size(0),
              "AnalyticScoreNet: weights must be [K] with K = ", means.size(0));
  TORCH_CHECK((weights > 0).all().item<bool>(), "AnalyticScoreNet: weights must be > 0");
  TORCH_CHECK(data_std > 0.0, "AnalyticScoreNet: data std must be > 0");
  means_ = register_buffer("means", means.to(torch::kFloat64).contiguous());
  weights_ = register_buffer("weights", (weights / weights.sum()).to(torch::kFloat64));
}

AnalyticScoreNetImpl::AnalyticScoreNetImpl(std::shared_ptr<const Sde> sde, bool continuous,
                                           torch::Tensor means, torch::Tensor weights,
                                           torch::Tensor covariances)
    : AnalyticScoreNetImpl(std::move(sde), continuous, means, weights, 1.0) {
  const int64_t k = means.size(0), d = means[0].numel();
  TORCH_CHECK(covariances.sizes() == torch::IntArrayRef({k, d, d}),
              "AnalyticScoreNet: covariances must be [K, D, D] = [", k, ", ", d, ", ", d, "], got ",
              covariances.sizes());
  auto cov = covariances.to(torch::kFloat64);
  SCORCH_CHECK(torch::allclose(cov, cov.transpose(1, 2), 1e-9, 1e-12),
               "analytic covariances must be symmetric");
  // Symmetric eigendecomposition, batched over components.
  auto [vals, vecs] = torch::linalg_eigh(cov);
  SCORCH_CHECK((vals > 0).all().item<bool>(),
               "analytic covariances must be positive definite; smallest eigenvalue ",
               vals.min().item<double>());
  data_std_ = 0;
  eigvals_ = register_buffer("eigvals", vals.contiguous());
  eigvecs_ = register_buffer("eigvecs", vecs.contiguous());
}

std::pair<torch::Tensor, torch::Tensor> AnalyticScoreNetImpl::rotated(
    const torch::Tensor& x_flat, const torch::Tensor& m, const torch::Tensor& sigma) const {
  const auto dtype = x_flat.scalar_type();
  const auto mu = means_.to(dtype).flatten(1);                                   // [K, D]
  const auto diff = x_flat.unsqueeze(1) - m.view({-1, 1, 1}) * mu.unsqueeze(0);  // [B, K, D]
  const auto y = torch::einsum("bkd,kde->bke", {diff, eigvecs_.to(dtype)});
  const auto v = m.view({-1, 1, 1}).pow(2) * eigvals_.to(dtype).unsqueeze(0) +
                 sigma.view({-1, 1, 1}).pow(2);  // [B, K, D]
  return {y, v};
}

std::pair<torch::Tensor, torch::Tensor> AnalyticScoreNetImpl::decode(
    const torch::Tensor& time_cond, torch::ScalarType dtype) const {
  const int64_t n = sde_->num_scales();
  const auto opts = time_cond.options().dtype(dtype);
  if (sde_->kind() == SdeKind::kVE) {
    if (continuous_) return {torch::ones(time_cond.sizes(), opts), time_cond.to(dtype)};
    // Level k indexes the descending sigmas: sigma = discrete_sigmas[N - 1 - k].
    const auto& ve = static_cast<const VESde&>(*sde_);
    const auto level = (n - 1 - time_cond.to(torch::kLong)).clamp(0, n - 1);
    const auto sigma = on_device(ve.discrete_sigmas(), time_cond.device()).index_select(0, level);
    return {torch::ones(time_cond.sizes(), opts), sigma.to(dtype)};
  }
  if (continuous_ || sde_->kind() == SdeKind::kSubVP) {
    const auto t = time_cond.to(dtype) / 999.0;
    const auto mp = sde_->marginal_prob(torch::ones({t.size(0), 1}, opts), t);
    return {mp.mean.squeeze(1), mp.std};
  }
  // VP discrete: level floor(time_cond) of x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) z.
  const auto& vp = static_cast<const VPSde&>(*sde_);
  const auto level = time_cond.to(torch::kLong).clamp(0, n - 1);
  const auto abar = on_device(vp.alphas_cumprod(), time_cond.device()).index_select(0, level);
  return {torch::sqrt(abar).to(dtype), torch::sqrt(1.0 - abar).to(dtype)};
}

torch::Tensor AnalyticScoreNetImpl::logits(const torch::Tensor& x_flat, const torch::Tensor& m,
                                           const torch::Tensor& var) const {
  const auto mu = means_.to(x_flat.scalar_type()).flatten(1);                    // [K, D]
  const auto diff = x_flat.unsqueeze(1) - m.view({-1, 1, 1}) * mu.unsqueeze(0);  // [B, K, D]
  const auto log_w = torch::log(weights_.to(x_flat.scalar_type()));
  return log_w.unsqueeze(0) - diff.pow(2).sum(2) / (2.0 * var.unsqueeze(1));
}

torch::Tensor AnalyticScoreNetImpl::kernel_score(const torch::Tensor& x, const torch::Tensor& m,
                                                 const torch::Tensor& sigma) const {
  const auto x_flat = x.flatten(1);
  if (has_covariances()) {
    const auto [y, v] = rotated(x_flat, m, sigma);
    const auto logit = torch::log(weights_.to(x.scalar_type())).unsqueeze(0) -
                       0.5 * (y.pow(2) / v + torch::log(v)).sum(2);  // [B, K]
    const auto r = torch::softmax(logit, 1);
    const auto s = torch::einsum("bk,kde,bke->bd", {r, eigvecs_.to(x.scalar_type()), y / v});
    return (-s).view(x.sizes());
  }
  const auto var = m * m * (data_std_ * data_std_) + sigma * sigma;  // [B]
  const auto r = torch::softmax(logits(x_flat, m, var), 1);          // [B, K]
  const auto mu = means_.to(x.scalar_type()).flatten(1);             // [K, D]
  // sum_k r_k (x - m mu_k) = x - m sum_k r_k mu_k.
  const auto mean = m.unsqueeze(1) * torch::matmul(r, mu);  // [B, D]
  return (-(x_flat - mean) / var.unsqueeze(1)).view(x.sizes());
}

torch::Tensor AnalyticScoreNetImpl::kernel_log_prob(const torch::Tensor& x, const torch::Tensor& m,
                                                    const torch::Tensor& sigma) const {
  const auto x_flat = x.flatten(1);
  const double dim = static_cast<double>(x_flat.size(1));
  const double two_pi = 2.0 * std::acos(-1.0);
  if (has_covariances()) {
    const auto [y, v] = rotated(x_flat, m, sigma);
    const auto logit = torch::log(weights_.to(x.scalar_type())).unsqueeze(0) -
                       0.5 * (y.pow(2) / v + torch::log(two_pi * v)).sum(2);
    return torch::logsumexp(logit, 1);
  }
  const auto var = m * m * (data_std_ * data_std_) + sigma * sigma;
  return torch::logsumexp(logits(x_flat, m, var), 1) - 0.5 * dim * torch::log(two_pi * var);
}

torch::Tensor AnalyticScoreNetImpl::forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                                            const torch::Tensor& class_labels) {
  TORCH_CHECK(x.dim() >= 1 && time_cond.dim() == 1 && time_cond.size(0) == x.size(0),
              "AnalyticScoreNet: x ", x.sizes(), " and time_cond ", time_cond.sizes());
  const auto [m, sigma] = decode(time_cond, x.scalar_type());
  const auto s = kernel_score(x, m, sigma);
  if (sde_->kind() == SdeKind::kVE) return s;
  // score_fn divides by the same sigma: score = -out / sigma.
  return -batch_view(sigma, s) * s;
}

torch::Tensor AnalyticScoreNetImpl::score(const torch::Tensor& x, const torch::Tensor& t) const {
  const auto mp = sde_->marginal_prob(torch::ones({t.size(0), 1}, x.options()), t);
  return kernel_score(x, mp.mean.squeeze(1), mp.std);
}

torch::Tensor AnalyticScoreNetImpl::log_prob(const torch::Tensor& x, const torch::Tensor& t) const {
  const auto mp = sde_->marginal_prob(torch::ones({t.size(0), 1}, x.options()), t);
  return kernel_log_prob(x, mp.mean.squeeze(1), mp.std);
}

torch::Tensor AnalyticScoreNetImpl::sample(int64_t n, torch::ScalarType dtype) const {
  const auto k = torch::multinomial(weights_, n, /*replacement=*/true);
  const auto mu = means_.index_select(0, k.to(means_.device()));
  if (has_covariances()) {  // mu + U diag(sqrt(lambda)) z
    const auto kk = k.to(means_.device());
    const auto z = torch::randn({n, eigvals_.size(1)}, means_.options()) *
                   eigvals_.index_select(0, kk).sqrt();
    const auto x = torch::einsum("nde,ne->nd", {eigvecs_.index_select(0, kk), z});
    return (mu.flatten(1) + x).view(mu.sizes()).to(dtype);
  }
  return (mu + data_std_ * torch::randn_like(mu)).to(dtype);
}

AnalyticScoreNet make_analytic_gaussian(std::shared_ptr<const Sde> sde, bool continuous,
                                        const torch::Tensor& mean, double std) {
  return AnalyticScoreNet(std::move(sde), continuous, mean.unsqueeze(0),
                          torch::ones({1}, torch::kFloat64), std);
}

AnalyticScoreNet make_analytic_mixture(std::shared_ptr<const Sde> sde, bool continuous,
                                       const torch::Tensor& means, const torch::Tensor& weights,
                                       double std) {
  return AnalyticScoreNet(std::move(sde), continuous, means, weights, std);
}

AnalyticScoreNet make_analytic_from_config(const Config& c, std::shared_ptr<const Sde> sde) {
  const auto& m = c.model;
  const bool images = is_image_data(c);
  std::vector<int64_t> shape = images ? std::vector<int64_t>{c.data.num_channels, c.data.image_size,
                                                             c.data.image_size}
                                      : std::vector<int64_t>{c.data.dim};
  int64_t d = 1;
  for (auto v : shape) d *= v;
  const auto f64 = torch::kFloat64;
  torch::Tensor means = m.analytic_means.empty()
                            ? torch::zeros({1, d}, f64)
                            : torch::tensor(m.analytic_means, f64).view({-1, d});
  const int64_t k = means.size(0);
  torch::Tensor weights =
      m.analytic_weights.empty() ? torch::ones({k}, f64) : torch::tensor(m.analytic_weights, f64);
  SCORCH_CHECK(weights.size(0) == k && (weights > 0).all().item<bool>(),
               "model.analytic_weights must hold ", k, " positive values");
  std::vector<int64_t> mshape{k};
  mshape.insert(mshape.end(), shape.begin(), shape.end());
  if (m.analytic_covariances.empty())
    return AnalyticScoreNet(std::move(sde), c.training.continuous, means.view(mshape), weights,
                            m.analytic_std);
  try {
    return AnalyticScoreNet(std::move(sde), c.training.continuous, means.view(mshape), weights,
                            torch::tensor(m.analytic_covariances, f64).view({k, d, d}));
  } catch (const Error& e) {
    fail(std::string("model.analytic_covariances: ") + e.what());
  }
}

}  // namespace scorch
