// Turns a score network's output into a score for each SDE, exactly as
// score_sde models/utils.py get_score_fn does:
//
//   SDE, training           time_cond fed to the net        score
//   VP continuous, sub-VP   999 t                           -out / std(t)
//   VP discrete             t (N - 1) (float)               -out / sqrt(1 - alpha_bar)[i],
//                                                           i = floor(t (N - 1))
//   VE continuous           sigma(t)                        out
//   VE discrete             round((1 - t)(N - 1)) (int64,   out
//                           level 0 = sigma_max)
//
// sub-VP always uses the continuous convention (score_sde has no discrete sub-VP).
// Unlike the reference, the network's train/eval mode is left to the caller.
//
//   auto score = make_score_fn(net, sde, config.training.continuous);
//   auto s = score(x, t);  // [B, ...]
#pragma once

#include <torch/torch.h>

#include <memory>

#include "nn/score_net.h"
#include "sde/sde.h"

namespace scorch {

// The noise conditioning score_sde feeds the network at time t [B] (table above):
// float [B] in t's dtype, or int64 [B] for VE discrete.
torch::Tensor score_time_cond(const Sde& sde, bool continuous, const torch::Tensor& t);

// The divisor d(t) [B] of the VP / sub-VP conversion score = -out / d (the marginal
// std, or the discrete table value for VP discrete), in x's dtype. REQUIRES: not VE.
torch::Tensor score_output_std(const Sde& sde, bool continuous, const torch::Tensor& t,
                               torch::ScalarType dtype);

// s(x, t) = conversion of net(x, time_cond(t), class_labels).
// x: [B, ...]; t: [B] in [0, 1]; class_labels: [B] int64 or undefined. Returns [B, ...].
// Differentiable with respect to x and the network's parameters.
torch::Tensor score_fn(ScoreNetImpl& net, const Sde& sde, bool continuous, const torch::Tensor& x,
                       const torch::Tensor& t, const torch::Tensor& class_labels = {});

// The same as a ScoreFn closure; it shares ownership of `net` and `sde`. The
// class labels, if given, are passed on every call (batch size must match x).
ScoreFn make_score_fn(ScoreNet net, std::shared_ptr<const Sde> sde, bool continuous,
                      torch::Tensor class_labels = {});

}  // namespace scorch
