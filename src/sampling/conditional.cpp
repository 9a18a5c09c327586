// Conditional PC sampling by projection onto a linear observation (Song et al.
// 2021, App. I; score_sde_pytorch controllable_generation.py) and classifier-free
// guidance (Ho & Salimans 2022, eq. 6).
//
// Differences from the reference, all deliberate:
// - x_mean keeps the update's noise-free mean in the unobserved part; the
//   reference rebuilds it from the noisy x, so its noise removal never removes
//   the last step's noise there.
// - the start state already holds the observation perturbed to t = T instead of
//   the clean observation (as score_sde_pytorch issue #39 proposes), and the result ends with the
//   exact observation (the reference returns m(eps) x_obs + ..., not x_obs, in the known part).
// - with no corrector, nothing is re-imposed after the (skipped) corrector.
#include "sampling/conditional.h"

#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/sample_noise.h"
#include "nn/precond.h"
#include "nn/score_model.h"

namespace scorch {
namespace {

// ---------------------------------------------------------------------------
// Projection sampling.

// replace(x, v) = x - P x + P v: x with its observed part taken from v.
using Replace = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& v)>;

// PC sampling of `shape` where, after every update, the observed part is set to
// that of x_obs perturbed to time t: m(t) x_obs + std(t) z (and m(t) x_obs for
// x_mean). x_obs: a full-size image with P x_obs = the observation. The result
// is finish(x, x_obs), which imposes the clean observation exactly.
SampleResult projected_pc_sample(const Sde& sde, const ScoreFn& score, const torch::Tensor& x_obs,
                                 const Replace& replace, const Replace& finish, const PCOptions& o,
                                 const ProgressFn& progress) {
  TORCH_CHECK(o.num_steps >= 1, "conditional sampling needs num_steps >= 1");
  if (o.predictor == Predictor::kAncestral)
    SCORCH_CHECK(sde.kind() != SdeKind::kSubVP && !o.probability_flow,
                 "sampling.predictor=ancestral_sampling works with vesde or vpsde and "
                 "sampling.probability_flow=false");
  torch::NoGradGuard no_grad;
  const int64_t b = x_obs.size(0);
  const auto options = x_obs.options();
  // The perturbation kernel p_0t(. | x_obs) imposed on the observed part.
  auto impose = [&](const PCStep& s, const torch::Tensor& t) {
    const auto kernel = sde.marginal_prob(x_obs, t);
    const auto noisy = kernel.mean + batch_view(kernel.std, x_obs) * sample_randn_like(x_obs);
    return PCStep{replace(s.x, noisy), replace(s.x_mean, kernel.mean)};
  };
  auto x = sde.prior_sampling(x_obs.sizes(), options);
  PCStep state = impose({x, x}, torch::full({b}, sde.T(), options));
  auto ts = torch::linspace(sde.T(), o.eps, o.num_steps, torch::kDouble);
  for (int64_t i = 0; i < o.num_steps; ++i) {
    auto t = torch::full({b}, ts[i].item<double>(), options);
    if (o.corrector != Corrector::kNone) state = impose(pc_corrector_step(sde, score, state.x, t, o), t);
    state = impose(pc_predictor_step(sde, score, state.x, t, o), t);
    if (progress) progress(i + 1, o.num_steps);
  }
  const int64_t per_step = (o.corrector == Corrector::kNone ? 0 : o.n_steps_each) +
                           (o.predictor == Predictor::kNone ? 0 : 1);
  return {finish(o.noise_removal ? state.x_mean : state.x, x_obs), o.num_steps * per_step};
}

void check_finite(const torch::Tensor& v, const char* what) {
  SCORCH_CHECK(torch::isfinite(v).all().item<bool>(), what, " has non-finite values");
}

void check_image_batch(const torch::Tensor& v, const char* what) {
  SCORCH_CHECK(v.defined() && v.dim() == 4 && v.numel() > 0, what,
               " must be a non-empty [B, C, H, W] batch, got ",
               v.defined() ? v.sizes() : at::IntArrayRef{});
  SCORCH_CHECK(v.is_floating_point(), what, " must be floating point, got ", v.scalar_type());
  check_finite(v, what);
}

// u = D x per pixel for D [3, 3] and x [B, 3, H, W].
torch::Tensor rotate_colors(const torch::Tensor& d, const torch::Tensor& x) {
  return torch::einsum("ij,bjhw->bihw", {d, x});
}

// Imposes v's gray channel on x in the decoupled space: u = D x, u_0 <- (D v)_0,
// x = D^T u. decoupling: color_decoupling_matrix() on x's device.
torch::Tensor impose_gray(const torch::Tensor& decoupling, const torch::Tensor& x,
                          const torch::Tensor& v) {
  const auto d = decoupling.to(x.scalar_type());
  auto u = rotate_colors(d, x);
  auto gray = rotate_colors(d.slice(0, 0, 1), v);
  return rotate_colors(d.t(), torch::cat({gray, u.slice(1, 1)}, 1));
}

torch::Tensor upsample_nearest(const torch::Tensor& y, int64_t f) {
  return y.repeat_interleave(f, 2).repeat_interleave(f, 3);
}

// x - A+ A x + A+ A v = x + A+ A (v - x).
torch::Tensor impose_low_res(const torch::Tensor& x, const torch::Tensor& v, int64_t f) {
  return x + upsample_nearest(torch::avg_pool2d(v - x, f), f);
}

// Runs `replace` in float64 and casts back, so the imposed observation is off by
// one rounding of the output dtype only.
Replace in_double(Replace replace) {
  return [replace = std::move(replace)](const torch::Tensor& x, const torch::Tensor& v) {
    return replace(x.to(torch::kDouble), v.to(torch::kDouble)).to(x.scalar_type());
  };
}

}  // namespace

torch::Tensor color_decoupling_matrix() {
  const double a = 1.0 / std::sqrt(3.0), b = 1.0 / std::sqrt(6.0), c = 1.0 / std::sqrt(2.0);
  return torch::tensor({a, a, a, -2 * b, b, b, 0.0, c, -c}, torch::kDouble).view({3, 3});
}

namespace {

// Guidance's labels, checked: [B] conditional labels, then (w > 0) B null
// labels (num_classes), int64.
torch::Tensor guidance_batch_labels(const torch::Tensor& class_labels, int64_t num_classes,
                                    double guidance_weight) {
  SCORCH_CHECK(num_classes >= 1,
               "classifier-free guidance needs a class-conditional model "
               "(data.num_classes >= 1), got num_classes=",
               num_classes);
  SCORCH_CHECK(std::isfinite(guidance_weight) && guidance_weight >= 0,
               "guidance weight must be a finite number >= 0, got ", guidance_weight);
  SCORCH_CHECK(class_labels.defined() && class_labels.dim() == 1 && class_labels.numel() > 0 &&
                   !class_labels.is_floating_point() && !class_labels.is_complex(),
               "class labels for guidance must be a non-empty [B] integer tensor");
  auto labels = class_labels.to(torch::kLong);
  const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
  SCORCH_CHECK(lo >= 0 && hi < num_classes, "class labels must lie in [0, ", num_classes, ") (",
               num_classes, " is the null class), got labels in [", lo, ", ", hi, "]");
  // Conditional half first, then (w > 0) the null half.
  return guidance_weight == 0 ? labels
                              : torch::cat({labels, torch::full_like(labels, num_classes)});
}

}  // namespace

ScoreFn make_guided_score_fn(ScoreNet net, std::shared_ptr<const Sde> sde, bool continuous,
                             torch::Tensor class_labels, int64_t num_classes,
                             double guidance_weight) {
  TORCH_CHECK(net && sde, "make_guided_score_fn: null network or SDE");
  auto batch_labels = guidance_batch_labels(class_labels, num_classes, guidance_weight);
  const int64_t b = class_labels.size(0);
  const double w = guidance_weight;
  return [net = std::move(net), sde = std::move(sde), continuous,
          batch_labels = std::move(batch_labels), b,
          w](const torch::Tensor& x, const torch::Tensor& t) {
    SCORCH_CHECK(x.size(0) == b, "guidance was given ", b, " class labels for a batch of ",
                 x.size(0));
    const auto labels = batch_labels.to(x.device());
    if (w == 0) return score_fn(*net, *sde, continuous, x, t, labels);
    auto s = score_fn(*net, *sde, continuous, torch::cat({x, x}), torch::cat({t, t}), labels);
    return (1 + w) * s.slice(0, 0, b) - w * s.slice(0, b);
  };
}

Denoiser make_precond_denoiser(ScoreNet net, torch::Tensor class_labels, int64_t num_classes,
                               double guidance_weight) {
  auto precond = std::dynamic_pointer_cast<PrecondScoreNetImpl>(net);
  if (!precond) return {};
  const auto params = precond->parameters();
  const auto dtype = params.empty() ? torch::kFloat : params.front().scalar_type();
  const bool guided = num_classes >= 1;
  const double w = guided ? guidance_weight : 0.0;
  auto labels =
      guided ? guidance_batch_labels(class_labels, num_classes, guidance_weight) : class_labels;
  const int64_t b = guided ? class_labels.size(0) : -1;
  return [precond = std::move(precond), labels = std::move(labels), dtype, b, w](
             const torch::Tensor& x_hat, double sigma) {
    SCORCH_CHECK(b < 0 || x_hat.size(0) == b, "guidance was given ", b,
                 " class labels for a batch of ", x_hat.size(0));
    const auto y = labels.defined() ? labels.to(x_hat.device()) : labels;
    const auto x = w == 0 ? x_hat.to(dtype) : torch::cat({x_hat, x_hat}).to(dtype);
    const auto s = torch::full({x.size(0)}, sigma, x.options());
    const auto d = precond->denoise(x, s, y).to(torch::kDouble);
    if (w == 0) return d;
    return (1 + w) * d.slice(0, 0, b) - w * d.slice(0, b);
  };
}

SampleResult pc_inpaint(const Sde& sde, const ScoreFn& score, const torch::Tensor& data,
                        const torch::Tensor& mask, const PCOptions& options,
                        const ProgressFn& progress) {
  SCORCH_CHECK(data.defined() && data.dim() >= 2 && data.numel() > 0,
               "inpainting data must be a non-empty [B, ...] batch");
  SCORCH_CHECK(data.is_floating_point(), "inpainting data must be floating point, got ",
               data.scalar_type());
  check_finite(data, "inpainting data");
  SCORCH_CHECK(mask.defined() && mask.dim() <= data.dim(), "inpainting mask must have at most ",
               data.dim(), " dims (data ", data.sizes(), ")");
  for (int64_t i = 1; i <= mask.dim(); ++i) {
    const int64_t m = mask.size(-i), d = data.size(-i);
    SCORCH_CHECK(m == d || m == 1, "inpainting mask ", mask.sizes(), " does not broadcast to data ",
                 data.sizes());
  }
  SCORCH_CHECK(mask.scalar_type() == torch::kBool || ((mask == 0) | (mask == 1)).all().item<bool>(),
               "inpainting mask must hold only 0 (to fill) and 1 (known)");
  const auto known = mask.to(data.device()).to(torch::kBool).expand(data.sizes());
  Replace replace = [known](const torch::Tensor& x, const torch::Tensor& v) {
    return torch::where(known, v, x);
  };
  return projected_pc_sample(sde, score, data, replace, replace, options, progress);
}

SampleResult pc_colorize(const Sde& sde, const ScoreFn& score, const torch::Tensor& gray,
                         const PCOptions& options, const ProgressFn& progress) {
  check_image_batch(gray, "colorization input");
  SCORCH_CHECK(gray.size(1) == 1 || gray.size(1) == 3,
               "colorization input must have 1 (gray) or 3 channels, got ", gray.size(1));
  // Any image whose channel mean is the gray value serves as x_obs.
  const auto x_obs = gray.mean(1, /*keepdim=*/true).expand({-1, 3, -1, -1}).contiguous();
  Replace replace = [d = color_decoupling_matrix().to(gray.device())](const torch::Tensor& x,
                                                                      const torch::Tensor& v) {
    return impose_gray(d, x, v);
  };
  return projected_pc_sample(sde, score, x_obs, replace, in_double(replace), options, progress);
}

SampleResult pc_super_resolve(const Sde& sde, const ScoreFn& score, const torch::Tensor& low_res,
                              int64_t factor, const PCOptions& options,
                              const ProgressFn& progress) {
  check_image_batch(low_res, "super-resolution input");
  SCORCH_CHECK(factor >= 1, "super-resolution factor must be >= 1, got ", factor);
  Replace replace = [factor](const torch::Tensor& x, const torch::Tensor& v) {
    return impose_low_res(x, v, factor);
  };
  return projected_pc_sample(sde, score, upsample_nearest(low_res, factor), replace,
                             in_double(replace), options, progress);
}

torch::Tensor inpaint_mask(const std::string& region, int64_t h, int64_t w) {
  auto m = torch::zeros({1, 1, h, w});
  if (region == "left") m.narrow(3, 0, w / 2).fill_(1);
  else if (region == "right") m.narrow(3, w / 2, w - w / 2).fill_(1);
  else if (region == "top") m.narrow(2, 0, h / 2).fill_(1);
  else if (region == "bottom") m.narrow(2, h / 2, h - h / 2).fill_(1);
  else if (region == "outside_center") {
    m.fill_(1);
    m.narrow(2, h / 4, h / 2).narrow(3, w / 4, w / 2).zero_();
  } else
    fail("--mask '" + region + "' is unknown; use left, right, top, bottom or outside_center");
  return m;
}

}  // namespace scorch
