// The interface every score network implements, and the factory that builds
// one from the config. A network maps a noisy input and its noise
// conditioning to an output of the input's shape; score_model.h turns that
// output into a score for each SDE (score_sde models/utils.py get_score_fn).
#pragma once

#include <torch/torch.h>

#include <memory>

namespace scorch {

struct Config;

class ScoreNetImpl : public torch::nn::Module {
 public:
  // x: [B, ...] (images [B, C, H, W] or vectors [B, D]), float.
  // time_cond: [B], the noise conditioning as score_sde feeds it
  //   (sigma for VE continuous, 999 t for VP/sub-VP, level index when discrete).
  // class_labels: [B] int64 in [0, num_classes] (num_classes = the null class
  //   of classifier-free guidance), or an undefined tensor when unconditional.
  // Returns [B, ...] like x.
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                                const torch::Tensor& class_labels = {}) = 0;
};

using ScoreNet = std::shared_ptr<ScoreNetImpl>;

// Builds model.name (mlp | ddpm | ncsnpp | adm | ncsn | ncsnv2_64 | ncsnv2_128 |
// ncsnv2_256 | edm2) with the config's options, with score_sde's
// initialisation (edm2: EDM2's). Throws scorch::Error for an unusable config.
ScoreNet make_score_net(const Config& config);

// Trainable parameter count (requires_grad only).
int64_t count_trainable_parameters(const torch::nn::Module& module);

}  // namespace scorch
