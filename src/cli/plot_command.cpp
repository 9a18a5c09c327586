// scorch plot: PNG plots of a run's log.jsonl (loss, loss by quartile of t,
// throughput, evaluation metrics) for people without Grafana; drawn by
// gnuplot (monitor/run_plot.h).
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "monitor/run_plot.h"

namespace scorch::cli {

void add_png_options(CLI::App& cmd, PlotOptions& plot) {
  cmd.add_option("--gnuplot", plot.gnuplot, "gnuplot executable")->capture_default_str();
  cmd.add_option("--width", plot.width, "PNG width in pixels")
      ->check(CLI::Range(200, 10000))
      ->capture_default_str();
  cmd.add_option("--height", plot.height, "PNG height in pixels")
      ->check(CLI::Range(150, 10000))
      ->capture_default_str();
}

void add_plot_command(CLI::App& app, std::function<int()>& run) {
  struct Args {
    std::string workdir, log, out;
    PlotOptions plot;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "plot",
      "PNG plots of a run's log.jsonl: loss, loss by t-quartile, images/s, eval metrics "
      "(needs gnuplot)");
  cmd->add_option("--workdir", args->workdir, "run directory; reads WORKDIR/log.jsonl");
  cmd->add_option("--log", args->log, "a log.jsonl to plot instead of the workdir's");
  cmd->add_option("--out", args->out, "directory for the PNGs (default: WORKDIR/plots)");
  add_png_options(*cmd, args->plot);
  cmd->add_flag("--json", args->json, "print the files written as one JSON object on stdout");
  cmd->callback([&run, args] {
    run = [args] {
      namespace fs = std::filesystem;
      SCORCH_CHECK(!args->workdir.empty() || !args->log.empty(),
                   "scorch plot needs --workdir W (plots W/log.jsonl) or --log FILE");
      const std::string log_path =
          args->log.empty() ? (fs::path(args->workdir) / "log.jsonl").string() : args->log;
      SCORCH_CHECK(!args->out.empty() || !args->workdir.empty(),
                   "with --log and no --workdir, give --out DIR for the PNGs");
      const std::string out =
          args->out.empty() ? (fs::path(args->workdir) / "plots").string() : args->out;

      const auto log = read_run_log_series(log_path);
      const auto result = plot_run_log(log, out, args->plot);
      for (const auto& f : result.files) std::cerr << "wrote " << f << "\n";
      for (const auto& [name, why] : result.skipped)
        std::cerr << "no " << name << ": " << why << "\n";
      if (args->json)
        std::cout << nlohmann::json{{"log", log_path},
                                    {"records", log.records},
                                    {"files", result.files},
                                    {"skipped", result.skipped}}
                         .dump()
                  << std::endl;
      return static_cast<int>(kExitOk);
    };
  });
}

}  // namespace scorch::cli
