// The score field, data and trajectories of a 2-D model (see score_field.h).
#include "jobs/score_field.h"

#include "core/config.h"
#include "core/error.h"
#include "eval/toy_quality.h"
#include "nn/score_model.h"
#include "sampling/pc_sampler.h"
#include "sampling/sampler.h"

namespace scorch {

ScoreFieldPlotInput score_field_input(const Config& c, std::shared_ptr<const Sde> sde,
                                      ScoreNet net, const torch::Device& device,
                                      const ScoreFieldOptions& o) {
  const auto shape = sample_shape(c);
  SCORCH_CHECK(shape.size() == 1 && shape[0] == 2, "scorch score-plot draws 2-D models; the "
               "model has samples of shape [", shape.size() == 1 ? shape[0] : 0,
               shape.size() == 1 ? "]" : ", ...]", " (data.dataset=", c.data.dataset, ")");
  torch::NoGradGuard no_grad;
  ScoreFieldPlotInput in;
  if (is_toy_data(c) && o.data_points > 0) in.data = toy_held_out(c, o.data_points);
  double lo_x = -3, hi_x = 3, lo_y = -3, hi_y = 3;
  if (o.extent > 0) {
    lo_x = lo_y = -o.extent, hi_x = hi_y = o.extent;
  } else if (in.data.defined()) {
    const auto lo = std::get<0>(in.data.min(0)), hi = std::get<0>(in.data.max(0));
    const auto margin = 0.1 * (hi - lo);
    lo_x = (lo[0] - margin[0]).item<double>(), hi_x = (hi[0] + margin[0]).item<double>();
    lo_y = (lo[1] - margin[1]).item<double>(), hi_y = (hi[1] + margin[1]).item<double>();
  }
  const auto options = torch::TensorOptions().device(device);
  const auto gx = torch::linspace(lo_x, hi_x, o.grid, options);
  const auto gy = torch::linspace(lo_y, hi_y, o.grid, options);
  const auto mesh = torch::meshgrid({gx, gy}, "ij");
  const auto grid = torch::stack({mesh[0].flatten(), mesh[1].flatten()}, 1);  // [G, 2]
  for (double t : o.times) {
    const auto tt = torch::full({grid.size(0)}, t, options);
    const auto s = score_fn(*net, *sde, c.training.continuous, grid, tt);
    in.panels.push_back({t, grid.cpu(), s.cpu()});
  }
  if (o.trajectories > 0) {
    const auto pc = pc_options_from_config(c.sampling, sampling_eps(c),
                                           sampling_steps(c, SamplingMethod::kPc));
    const auto score = make_score_fn(net, sde, c.training.continuous);
    in.trajectories = pc_trajectory(*sde, score, {o.trajectories, 2}, options, pc);
  }
  return in;
}

}  // namespace scorch
