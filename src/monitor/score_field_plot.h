// PNG plots for 2-D score models: the learned score field s(x, t) as arrows on
// a grid at chosen noise levels t, drawn over the data, and sampling
// trajectories from the prior to the data. Drawn by gnuplot (run_plot.h) from
// a generated script; each plot's numbers are kept in a text file beside it,
// so the arrows can be checked against the model.
//
//   ScoreFieldPlotInput in;
//   in.data = points;                               // [M, 2]
//   in.panels.push_back({0.1, grid, score});        // [G, 2] each
//   in.trajectories = path;                         // [S, K, 2]
//   auto result = plot_score_field(in, "runs/toy/plots", {});
//   // score_field_t0.1.png + .dat, trajectories.png + .dat, score_field.gp
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "monitor/run_plot.h"

namespace scorch {

struct ScoreFieldPanel {
  double t = 0;         // the time (noise level) the score was evaluated at
  torch::Tensor grid;   // [G, 2] float: the arrow tails
  torch::Tensor score;  // [G, 2] float: s(grid, t)
};

struct ScoreFieldPlotInput {
  torch::Tensor data;                   // [M, 2] data points drawn in grey; may be undefined
  std::vector<ScoreFieldPanel> panels;  // one PNG each
  torch::Tensor trajectories;           // [S, K, 2]: K paths of S states; may be undefined
};

// Writes, into `out_dir` (created if missing), for each panel
// score_field_t<t>.png and score_field_t<t>.dat, whose rows are
//   x y s_x s_y dx dy
// with (dx, dy) = c (s_x, s_y) the arrow drawn, c scaling the panel's longest
// arrow to 0.9 grid spacings (noted in the file's header); then, if
// trajectories are given, trajectories.png and trajectories.dat (one block of
// "x y" rows per path, blocks separated by two blank lines); the data in
// data.dat; and the script score_field.gp. PlotResult.files lists the PNGs,
// then the script. Throws scorch::Error for tensors of the wrong shape, or as
// plot_run_log does for gnuplot and the directory.
PlotResult plot_score_field(const ScoreFieldPlotInput& input, const std::string& out_dir,
                            const PlotOptions& options);

// The file name stem of a panel at time t: "score_field_t" + t in %g ("0.01").
std::string score_field_stem(double t);

}  // namespace scorch
