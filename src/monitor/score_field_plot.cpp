// Score-field and trajectory plots for 2-D models (score_field_plot.h): the
// numbers go to .dat files, and one gnuplot script draws every PNG from them.
#include "monitor/score_field_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace scorch {
namespace fs = std::filesystem;

namespace {

torch::Tensor as_points(const torch::Tensor& t, const std::string& what) {
  SCORCH_CHECK(t.dim() == 2 && t.size(1) == 2, "score field plot: ", what,
               " must be [N, 2] (2-D data), got ", t.sizes());
  return t.detach().to(torch::kCPU, torch::kDouble).contiguous();
}

void write_file(const fs::path& path, const std::string& text) {
  write_file_atomic(path.string(), text);
}

// Full precision, so the files can be compared with the model.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// The smallest positive gap between distinct x (or y) values of the grid.
double grid_spacing(const torch::Tensor& grid) {
  double best = 0;
  for (int d = 0; d < 2; ++d) {
    auto v = std::get<0>(torch::unique_dim(grid.select(1, d).contiguous(), 0));
    if (v.numel() < 2) continue;
    const double gap = (v.slice(0, 1) - v.slice(0, 0, -1)).min().item<double>();
    if (gap > 0 && (best == 0 || gap < best)) best = gap;
  }
  return best > 0 ? best : 1.0;
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string score_field_stem(double t) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "score_field_t%g", t);
  return buf;
}

PlotResult plot_score_field(const ScoreFieldPlotInput& input, const std::string& out_dir,
                            const PlotOptions& options) {
  SCORCH_CHECK(!input.panels.empty() || input.trajectories.defined(),
               "score field plot: nothing to draw (no noise level and no trajectories)");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  SCORCH_CHECK(!ec, "cannot create the plot directory '", out_dir, "': ", ec.message());
  const fs::path dir = fs::absolute(out_dir);

  std::ostringstream script;
  script << "# Drawn by `scorch score-plot`; run `gnuplot score_field.gp` to redraw.\n"
         << "term = strstrt(GPVAL_TERMINALS, 'pngcairo') > 0 ? 'pngcairo' : 'png'\n"
         << "set size ratio -1\nset xlabel 'x_1'\nset ylabel 'x_2'\n\n";
  const std::string term =
      "set terminal term size " + std::to_string(options.width) + "," +
      std::to_string(options.height) + "\n";
  std::string data_plot;  // the grey data layer, or nothing
  if (input.data.defined()) {
    const auto data = as_points(input.data, "the data");
    auto a = data.accessor<double, 2>();
    std::ostringstream d;
    d << "# x y: the data\n";
    for (int64_t i = 0; i < data.size(0); ++i) d << num(a[i][0]) << " " << num(a[i][1]) << "\n";
    write_file(dir / "data.dat", d.str());
    data_plot = quoted((dir / "data.dat").string()) +
                " using 1:2 with points pt 7 ps 0.3 lc rgb '#b0b0b0' title 'data', ";
  }

  PlotResult result;
  for (const auto& panel : input.panels) {
    const auto grid = as_points(panel.grid, "the grid");
    const auto score = as_points(panel.score, "the score");
    SCORCH_CHECK(grid.size(0) == score.size(0), "score field plot: ", grid.size(0),
                 " grid points but ", score.size(0), " scores");
    const double longest = score.pow(2).sum(1).sqrt().max().item<double>();
    const double scale =
        longest > 0 && std::isfinite(longest) ? 0.9 * grid_spacing(grid) / longest : 1.0;
    const auto stem = score_field_stem(panel.t);
    std::ostringstream d;
    d << "# x y s_x s_y dx dy: the score s(x, t) at t = " << num(panel.t)
      << "; arrow (dx, dy) = " << num(scale) << " s\n";
    auto g = grid.accessor<double, 2>();
    auto s = score.accessor<double, 2>();
    for (int64_t i = 0; i < grid.size(0); ++i)
      d << num(g[i][0]) << " " << num(g[i][1]) << " " << num(s[i][0]) << " " << num(s[i][1])
        << " " << num(scale * s[i][0]) << " " << num(scale * s[i][1]) << "\n";
    write_file(dir / (stem + ".dat"), d.str());
    const auto png = (dir / (stem + ".png")).string();
    char title[96];
    std::snprintf(title, sizeof title, "score s(x, t) at t = %g (arrows x %.3g)", panel.t, scale);
    script << term << "set output " << quoted(png) << "\nset title " << quoted(title) << "\n"
           << "plot " << data_plot << quoted((dir / (stem + ".dat")).string())
           << " using 1:2:5:6 with vectors head size 0.08,20 filled lc rgb '#1f4e9c' "
              "title 'score'\nunset output\n\n";
    result.files.push_back(png);
  }
  if (input.trajectories.defined()) {
    const auto& tr = input.trajectories;
    SCORCH_CHECK(tr.dim() == 3 && tr.size(2) == 2, "score field plot: trajectories must be "
                 "[steps, paths, 2], got ", tr.sizes());
    const auto paths = tr.detach().to(torch::kCPU, torch::kDouble).contiguous();
    auto a = paths.accessor<double, 3>();
    std::ostringstream d;
    d << "# x y: one block per sampling path, from the prior (first row) to the sample\n";
    for (int64_t k = 0; k < paths.size(1); ++k) {
      for (int64_t i = 0; i < paths.size(0); ++i)
        d << num(a[i][k][0]) << " " << num(a[i][k][1]) << "\n";
      d << "\n\n";
    }
    const auto dat = (dir / "trajectories.dat").string();
    write_file(dat, d.str());
    const auto png = (dir / "trajectories.png").string();
    script << term << "set output " << quoted(png) << "\nset title 'sampling trajectories ("
           << paths.size(1) << " paths, " << paths.size(0) - 1 << " steps)'\n"
           << "plot " << data_plot << quoted(dat)
           << " using 1:2 with lines lw 0.8 lc rgb '#1f4e9c' title 'paths', " << quoted(dat)
           << " every ::" << paths.size(0) - 1 << "::" << paths.size(0) - 1
           << " using 1:2 with points pt 7 ps 0.5 lc rgb '#c0392b' title 'samples'\n"
           << "unset output\n\n";
    result.files.push_back(png);
  }
  const auto script_path = (dir / "score_field.gp").string();
  write_file(script_path, script.str());
  run_gnuplot(options.gnuplot, script_path);
  for (const auto& f : result.files)
    if (!fs::exists(f)) throw RunFailure("gnuplot ran but did not write '" + f + "'");
  result.files.push_back(script_path);
  return result;
}

}  // namespace scorch
