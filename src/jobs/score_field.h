// What `scorch score-plot` draws for a 2-D model (monitor/score_field_plot.h):
// the learned score s(x, t) on a grid at chosen noise levels, held-out data
// of a built-in 2-D set, and PC sampling trajectories from the prior
// (sampling.predictor / sampling.corrector).
//
//   ScoreFieldOptions o;  o.times = {0.01, 0.1, 0.5};
//   plot_score_field(score_field_input(config, sde, net, device, o), "plots", plot);
#pragma once

#include <memory>
#include <vector>

#include "monitor/score_field_plot.h"
#include "nn/score_net.h"
#include "sde/sde.h"

namespace scorch {

struct Config;

struct ScoreFieldOptions {
  std::vector<double> times{0.01, 0.1, 0.5};  // noise levels, in (0, 1]
  int64_t grid = 21;           // arrows per axis
  int64_t trajectories = 64;   // sampling paths; 0 = none
  int64_t data_points = 2000;  // held-out points of a built-in 2-D set; 0 = none
  double extent = 0;           // grid over [-E, E]^2; 0: the data's box plus 10%, else 3
};

// Throws scorch::Error unless the model's samples are 2-D vectors.
ScoreFieldPlotInput score_field_input(const Config& config, std::shared_ptr<const Sde> sde,
                                      ScoreNet net, const torch::Device& device,
                                      const ScoreFieldOptions& options);

}  // namespace scorch
