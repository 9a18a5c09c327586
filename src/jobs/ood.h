// Out-of-distribution scoring with a score model (as generativezoo offers):
// a per-sample anomaly score, higher = less like the training data, from the
// denoising loss (the training loss of the sample averaged over fixed draws
// of t and noise) or from bits/dim; and the AUROC of telling an
// out-of-distribution set from an in-distribution one by that score.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "nn/score_net.h"
#include "sde/sde.h"

namespace scorch {

struct Config;

// The training loss (config.training.*) of each sample of x [B, ...] (model
// space), averaged over `draws` draws of (t, noise) seeded by (seed, draw):
// a batch scores the same on every call. [B] float64.
torch::Tensor denoising_score(const Config& config, std::shared_ptr<const Sde> sde,
                              ScoreNetImpl& net, const torch::Tensor& x, int64_t draws,
                              uint64_t seed);

// Area under the ROC curve for separating `outlier` scores from `inlier`
// scores (outliers should score higher): P(s_out > s_in) + P(s_out = s_in) / 2,
// the Mann-Whitney U statistic over |in| |out| pairs, by ranks with ties
// averaged. 1 = perfect, 0.5 = chance.
double auroc(const torch::Tensor& inlier, const torch::Tensor& outlier);

// Per-sample scores of the first `num` samples of a dataset (`scorch ood`).
struct OodScoreOptions {
  bool bpd = false;          // bits/dim (likelihood.h); else the denoising loss
  int64_t num = 1000;        // samples from the start of the dataset
  int64_t batch_size = 256;  // samples per evaluation
  int64_t draws = 10;        // loss: draws of (t, noise) per sample
  uint64_t seed = 0;         // of the draws, the dequantization and the probes
  std::string progress;      // label of a progress bar on stderr; "" = none
};

// [min(num, size)] float64. Throws scorch::Error naming the dataset when its
// samples do not fit the model (config.data).
torch::Tensor ood_scores(const Config& config, std::shared_ptr<const Sde> sde, ScoreNet net,
                         const torch::Device& device, const std::string& dir,
                         const OodScoreOptions& options);

}  // namespace scorch
