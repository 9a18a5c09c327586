// scorch score-plot: for a 2-D model, PNGs of the learned score field s(x, t)
// (arrows on a grid) at chosen noise levels over the data, and of PC sampling
// trajectories from the prior (monitor/score_field_plot.h, drawn by gnuplot).
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "jobs/model_source.h"
#include "core/error.h"
#include "jobs/score_field.h"

namespace scorch::cli {

void add_score_plot_command(CLI::App& app, std::function<int()>& run) {
  struct Args {
    ModelSourceArgs model;
    ScoreFieldOptions field;
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
  cmd->add_option("--t", args->field.times, "noise levels (times in (0, 1]), comma-separated")
      ->delimiter(',')
      ->check(CLI::Range(1e-6, 1.0))
      ->capture_default_str();
  cmd->add_option("--grid", args->field.grid, "arrows per axis")
      ->check(CLI::Range(2, 200))
      ->capture_default_str();
  cmd->add_option("--extent", args->field.extent,
                  "grid over [-E, E]^2 (default: the data's bounding box plus 10%, else 3)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--trajectories", args->field.trajectories, "sampling paths drawn (0: none)")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  cmd->add_option("--data-points", args->field.data_points, "data points drawn (toy 2-D datasets)")
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
      const auto in = score_field_input(m.config, m.sde, m.net, m.device, args->field);
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
