// Controllable generation with an unconditional score model (Song et al. 2021,
// §5 and App. I; score_sde_pytorch controllable_generation.py), and
// classifier-free guidance (Ho & Salimans 2022) for class-conditional models.
//
// Inpainting, colorization and super-resolution all observe a linear projection
// P x of the image. After every corrector and every predictor update of PC
// sampling, the observed part of x is replaced by the observation perturbed to
// the current time with the SDE's kernel, x <- x - P x + P (m(t) x_obs + std(t) z),
// and the returned sample satisfies P x = P x_obs exactly (up to float rounding
// where P mixes pixels):
//
//   PCOptions o;  o.predictor = Predictor::kReverseDiffusion;  o.corrector = Corrector::kLangevin;
//   auto score = make_score_fn(net, sde, continuous);
//   auto r = pc_inpaint(*sde, score, images, mask, o);        // r.x [B, C, H, W]
//   auto c = pc_colorize(*sde, score, gray, o);               // gray [B, 1, H, W] -> [B, 3, H, W]
//   auto s = pc_super_resolve(*sde, score, low_res, 2, o);    // [B, C, h, w] -> [B, C, 2h, 2w]
//
//   auto guided = make_guided_score_fn(net, sde, continuous, labels, num_classes, 2.0);
//   auto g = pc_sample(*sde, guided, {B, C, H, W}, {}, o);
//
// All functions sample on the observation's device and dtype with LibTorch's
// default generator, under NoGradGuard, and validate user input with scorch::Error.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "nn/score_net.h"
#include "sampling/pc_sampler.h"
#include "sampling/sigma_denoiser.h"
#include "sde/sde.h"

namespace scorch {

// Classifier-free guidance: s_w(x, t) = (1 + w) s(x, t, y) - w s(x, t, null),
// the score of p_t(x | y)^(1+w) p_t(x)^(-w), where null = num_classes is the
// class the trainer drops labels to (model.class_dropout). Each call evaluates
// `net` once on a 2B batch (conditional and null halves); w = 0 evaluates only
// the conditional half. The closure shares ownership of `net` and `sde`.
// class_labels: [B] int64 in [0, num_classes), B the batch the sampler uses.
// REQUIRES: num_classes >= 1, guidance_weight >= 0 (else scorch::Error).
ScoreFn make_guided_score_fn(ScoreNet net, std::shared_ptr<const Sde> sde, bool continuous,
                             torch::Tensor class_labels, int64_t num_classes,
                             double guidance_weight);

// The denoiser of an EDM-preconditioned network (model.precond, nn/precond.h)
// itself, for the samplers that step in sigma (sampler.h): D(x_hat; sigma) of
// float64 x_hat, evaluated in the network's parameter dtype, returned in
// float64. With num_classes >= 1, classifier-free guidance as
// make_guided_score_fn: D_w = (1 + w) D(x, y) - w D(x, null), the denoiser of
// the guided score (which is affine in D), one call on a 2B batch when w > 0
// (labels checked as there). With num_classes = 0, class_labels (if defined)
// are passed as they are. A network without model.precond gives an empty
// Denoiser: the samplers then derive D from the score. Shares `net`.
Denoiser make_precond_denoiser(ScoreNet net, torch::Tensor class_labels = {},
                               int64_t num_classes = 0, double guidance_weight = 0.0);

// Inpainting. data: [B, ...] float, the images (unknown pixels may hold anything
// finite); mask: 0/1 (bool or float) of data's shape or broadcastable to it,
// 1 where data is known. Returns [B, ...] with the known pixels bitwise equal
// to data and the others sampled; nfe as pc_sample counts it.
SampleResult pc_inpaint(const Sde& sde, const ScoreFn& score, const torch::Tensor& data,
                        const torch::Tensor& mask, const PCOptions& options,
                        const ProgressFn& progress = {});

// The known-pixel mask [1, 1, h, w] (1 = known) of a named region: left,
// right, top, bottom, or outside_center (all but the central square of half
// the size). Throws scorch::Error naming --mask for another name.
torch::Tensor inpaint_mask(const std::string& region, int64_t h, int64_t w);

// Colorization. gray: [B, 1, H, W], or [B, 3, H, W] whose channel mean is the
// gray value. The sample x [B, 3, H, W] is constrained in the decoupled space
// u = D x (per pixel, D = color_decoupling_matrix()), whose first coordinate
// sqrt(3) mean_c(x) is the gray channel; the result has mean_c(x) == gray.
SampleResult pc_colorize(const Sde& sde, const ScoreFn& score, const torch::Tensor& gray,
                         const PCOptions& options, const ProgressFn& progress = {});

// Super-resolution by `factor` f: A = average pooling f x f, A+ = nearest
// upsampling (A A+ = I, A+ A the orthogonal projection onto block-constant
// images). low_res y: [B, C, h, w]. Returns x [B, C, f h, f w] with A x == y.
// REQUIRES: factor >= 1.
SampleResult pc_super_resolve(const Sde& sde, const ScoreFn& score, const torch::Tensor& low_res,
                              int64_t factor, const PCOptions& options,
                              const ProgressFn& progress = {});

// The orthogonal 3x3 change of color basis of colorization, float64: rows
// (1,1,1)/sqrt(3), (-2,1,1)/sqrt(6), (0,1,-1)/sqrt(2). It is the transpose of
// score_sde's M (which decouples with einsum('bihw,ij->bjhw', x, M)).
torch::Tensor color_decoupling_matrix();

}  // namespace scorch
