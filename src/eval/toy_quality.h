// Quality of a 2-D model: the sliced Wasserstein distance between its
// samples and held-out data, beside two reference values computed the same
// way: the floor (the mean over kToyFloorDraws further held-out draws of the
// data, same size: one draw's SW1 varies by about a third of itself) and a
// baseline (a Gaussian with the data's mean and covariance). A good model
// sits near the floor, far below the baseline.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

namespace scorch {

struct Config;

// Independent data draws whose SW1 to the held-out data make the floor.
inline constexpr int64_t kToyFloorDraws = 8;

struct ToyQuality {
  double swd = 0;           // samples vs held-out data
  double swd_floor = 0;     // held-out vs another held-out draw, mean of kToyFloorDraws
  double swd_gaussian = 0;  // moment-matched Gaussian vs held-out data
  int64_t num_samples = 0;
};

// samples [N, 2]. Held-out data are drawn from streams of config.seed that
// training never uses. 256 projections.
ToyQuality toy_quality(const Config& config, const torch::Tensor& samples);

nlohmann::json to_json(const ToyQuality& q);

// The held-out data toy_quality compares against, [n, 2] float32.
torch::Tensor toy_held_out(const Config& config, int64_t n);

}  // namespace scorch
