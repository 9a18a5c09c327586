// scorch score-plot: for a 2-D model, PNGs of the learned score field s(x, t)
// (arrows on a grid) at chosen noise levels over the data, and of PC sampling
// trajectories from the prior (monitor/score_field_plot.h, drawn by gnuplot).
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_source.h"
#include "core/error.h"
#include "core/log.h"
#include "eval/toy_quality.h"
#include "monitor/score_field_plot.h"
#include "nn/score_model.h"
#include "sampling/pc_sampler.h"
#include "sampling/sampler.h"

namespace scorch::cli {

namespace {

bool is_toy2d(const std::string& name) {
  return name == "swiss_roll" || name == "two_moons" || name == "eight_gaussians" ||
         name == "checkerboard";
}

// The PC sampler's path (pc_sample's loop, sampling.predictor/corrector),
// every state kept: [steps + 1, paths, 2], the last the noise-free mean.
torch::Tensor pc_trajectories(const LoadedModel& m, int64_t paths) {
  const auto& c = m.config;
  const auto options = torch::TensorOptions().device(m.device);
  const auto pc = pc_options_from_config(c.sampling, sampling_eps(c), sampling_steps(c));
  auto score = make_score_fn(m.net, m.sde, c.training.continuous);
  auto x = m.sde->prior_sampling({paths, 2}, options);
  std::vector<torch::Tensor> states{x.cpu()};
  const auto times = torch::linspace(1.0, pc.eps, pc.num_steps, options.dtype(torch::kDouble));
  for (int64_t i = 0; i < pc.num_steps; ++i) {
    const auto t = torch::full({paths}, times[i].item<double>(), options);
    PCStep step = pc_corrector_step(*m.sde, score, x, t, pc);
    step = pc_predictor_step(*m.sde, score, step.x, t, pc);
    x = step.x;
    const bool last = i + 1 == pc.num_steps;
    states.push_back((last && pc.noise_removal ? step.x_mean : step.x).cpu());
  }
  return torch::stack(states, 0);
}

}  // namespace

void add_score_plot_command(CLI::App& app, std::function<int()>& run) {
  struct Args {
    ModelSourceArgs model;
    std::vector<double> times{0.01, 0.1, 0.5};
    int64_t grid = 21, trajectories = 64, data_points = 2000;
    double extent = 0;
    std::string out;
    PlotOptions plot{"gnuplot", 800, 800};
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "score-plot",
      "2-D models: PNGs of the score field at noise levels t over the data, and of sampling "
      "trajectories (needs gnuplot)");
  add_model_source_options(*cmd, args->model);
  cmd->add_option("--t", args->times, "noise levels (times in (0, 1]), comma-separated")
      ->delimiter(',')
      ->check(CLI::Range(1e-6, 1.0))
      ->capture_default_str();
  cmd->add_option("--grid", args->grid, "arrows per axis")
      ->check(CLI::Range(2, 200))
      ->capture_default_str();
  cmd->add_option("--extent", args->extent,
                  "grid over [-E, E]^2 (default: the data's bounding box plus 10%, else 3)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--trajectories", args->trajectories, "sampling paths drawn (0: none)")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  cmd->add_option("--data-points", args->data_points, "data points drawn (toy 2-D datasets)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  cmd->add_option("--out", args->out, "directory for the PNGs (default: WORKDIR/plots)");
  add_png_options(*cmd, args->plot);
  cmd->add_flag("--json", args->json, "print the files written as one JSON object on stdout");
  cmd->callback([&run, args] {
    run = [args] {
      namespace fs = std::filesystem;
      SCORCH_CHECK(!args->model.workdir.empty() || !args->model.checkpoint.empty() ||
                       !args->model.config.empty(),
                   "scorch score-plot needs --workdir W, --checkpoint FILE, or --config C "
                   "(model.name=analytic)");
      SCORCH_CHECK(!args->out.empty() || !args->model.workdir.empty(),
                   "scorch score-plot without --workdir needs --out DIR for the PNGs");
      LoadedModel m = load_model(args->model);
      const auto& c = m.config;
      const auto shape = sample_shape(c);
      SCORCH_CHECK(shape.size() == 1 && shape[0] == 2, "scorch score-plot draws 2-D models; ",
                   m.description, " has samples of shape [", shape.size() == 1 ? shape[0] : 0,
                   shape.size() == 1 ? "]" : ", ...]", " (data.dataset=", c.data.dataset, ")");
      torch::NoGradGuard no_grad;
      ScoreFieldPlotInput in;
      if (is_toy2d(c.data.dataset) && args->data_points > 0) {
        in.data = toy_held_out(c, args->data_points);  // the dataset's held-out draws
      }
      double lo_x = -3, hi_x = 3, lo_y = -3, hi_y = 3;
      if (args->extent > 0) {
        lo_x = lo_y = -args->extent, hi_x = hi_y = args->extent;
      } else if (in.data.defined()) {
        const auto lo = std::get<0>(in.data.min(0)), hi = std::get<0>(in.data.max(0));
        const auto margin = 0.1 * (hi - lo);
        lo_x = (lo[0] - margin[0]).item<double>(), hi_x = (hi[0] + margin[0]).item<double>();
        lo_y = (lo[1] - margin[1]).item<double>(), hi_y = (hi[1] + margin[1]).item<double>();
      }
      const auto options = torch::TensorOptions().device(m.device);
      const auto gx = torch::linspace(lo_x, hi_x, args->grid, options);
      const auto gy = torch::linspace(lo_y, hi_y, args->grid, options);
      const auto mesh = torch::meshgrid({gx, gy}, "ij");
      const auto grid = torch::stack({mesh[0].flatten(), mesh[1].flatten()}, 1);  // [G, 2]
      for (double t : args->times) {
        const auto tt = torch::full({grid.size(0)}, t, options);
        const auto s = score_fn(*m.net, *m.sde, c.training.continuous, grid, tt);
        in.panels.push_back({t, grid.cpu(), s.cpu()});
      }
      if (args->trajectories > 0) in.trajectories = pc_trajectories(m, args->trajectories);
      const std::string out =
          args->out.empty() ? (fs::path(args->model.workdir) / "plots").string() : args->out;
      const auto result = plot_score_field(in, out, args->plot);
      for (const auto& f : result.files) std::cerr << "wrote " << f << "\n";
      if (args->json)
        std::cout << nlohmann::json{{"model", m.description}, {"files", result.files}}.dump()
                  << std::endl;
      return static_cast<int>(kExitOk);
    };
  });
}

}  // namespace scorch::cli
