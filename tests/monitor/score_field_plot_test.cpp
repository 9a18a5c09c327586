// monitor/score_field_plot.h and `scorch score-plot`: the PNGs are written
// (PNG signature), and the arrows in the data files are the scores given, or,
// through the CLI, the closed-form score of an analytic Gaussian under the VP SDE.
#include "monitor/score_field_plot.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "testing/command.h"   // defines: run_scorch, run_command, mpirun_scorch
#include "testing/files.h"     // defines: read_file, write_bytes, random_bytes, entries
#include "testing/temp_dir.h"  // defines: TempDir

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

bool is_png(const fs::path& p) {
  const std::string b = read_file(p);
  return b.size() > 24 && b.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

// The numeric rows of a whitespace-separated text file ('#' comments and blank lines skipped).
std::vector<std::vector<double>> read_rows(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::vector<double>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    std::vector<double> row;
    double v;
    while (s >> v) row.push_back(v);
    rows.push_back(row);
  }
  return rows;
}

TEST(ScoreFieldPlot, WritesPngsAndTheArrowsGiven) {
  TempDir tmp("score_field");
  // A 3 x 3 grid of spacing 0.5; longest score (3, 4) has norm 5, so arrows
  // are scaled by 0.9 * 0.5 / 5 = 0.09.
  std::vector<double> g, s;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      g.insert(g.end(), {-0.5 + 0.5 * i, -0.5 + 0.5 * j});
      s.insert(s.end(), {i == 2 && j == 2 ? 3.0 : 0.1 * i, i == 2 && j == 2 ? 4.0 : -0.2 * j});
    }
  ScoreFieldPlotInput in;
  in.data = torch::tensor({0.0, 0.0, 1.0, 1.0, -1.0, 0.5}).reshape({3, 2});
  in.panels.push_back({0.1, torch::tensor(g, torch::kFloat64).reshape({9, 2}),
                       torch::tensor(s, torch::kFloat64).reshape({9, 2})});
  in.trajectories = torch::tensor({0.0, 0.0, 1.0, 1.0, 0.5, 0.5, 1.5, 1.5}).reshape({2, 2, 2});
  const auto result = plot_score_field(in, tmp.str(), PlotOptions{"gnuplot", 400, 400});
  ASSERT_EQ(result.files.size(), 3u);
  EXPECT_TRUE(is_png(tmp.path / "score_field_t0.1.png"));
  EXPECT_TRUE(is_png(tmp.path / "trajectories.png"));
  const auto rows = read_rows(tmp.path / "score_field_t0.1.dat");
  ASSERT_EQ(rows.size(), 9u);
  for (size_t k = 0; k < 9; ++k) {
    ASSERT_EQ(rows[k].size(), 6u);
    EXPECT_EQ(rows[k][0], g[2 * k]);
    EXPECT_EQ(rows[k][1], g[2 * k + 1]);
    EXPECT_EQ(rows[k][2], s[2 * k]);
    EXPECT_EQ(rows[k][3], s[2 * k + 1]);
    EXPECT_NEAR(rows[k][4], 0.09 * s[2 * k], 1e-15);
    EXPECT_NEAR(rows[k][5], 0.09 * s[2 * k + 1], 1e-15);
  }
  // Two paths of two states: (0,0) -> (0.5,0.5) and (1,1) -> (1.5,1.5).
  const auto paths = read_rows(tmp.path / "trajectories.dat");
  ASSERT_EQ(paths.size(), 4u);
  EXPECT_EQ(paths[1], (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ(paths[2], (std::vector<double>{1.0, 1.0}));
  in.panels[0].score = torch::zeros({9, 3});
  EXPECT_THROW(plot_score_field(in, tmp.str(), {}), Error);
}

TEST(ScoreFieldPlotCli, ArrowsAreTheAnalyticGaussianScore) {
  TempDir tmp("score_plot_cli");
  const auto out = tmp.path / "plots";
  const std::string config = std::string(SCORCH_SOURCE_DIR) + "/configs/toy/eight_gaussians_vp.yaml";
  // N((1, -1), 0.5^2 I) under the VP SDE (beta 0.1 .. 20): the marginal at t is
  // N(m (1, -1), (m^2 0.25 + 1 - m^2) I), log m = -t^2 (20 - 0.1) / 4 - 0.1 t / 2.
  auto r = run_scorch("score-plot --json --config " + config + " --out " + out.string() +
                      " --t 0.05,0.5 --grid 5 --extent 2 --trajectories 8 " +
                      "model.name=analytic model.analytic_means=[1,-1] sampling.num_steps=20");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.stdout_only)["files"].size(), 4u);
  for (double t : {0.05, 0.5}) {
    const auto stem = score_field_stem(t);
    EXPECT_TRUE(is_png(out / (stem + ".png"))) << stem;
    const auto rows = read_rows(out / (stem + ".dat"));
    ASSERT_EQ(rows.size(), 25u);
    const double m = std::exp(-0.25 * t * t * 19.9 - 0.05 * t);
    const double var = m * m * 0.25 + 1 - m * m;
    for (const auto& row : rows) {
      EXPECT_NEAR(row[2], -(row[0] - m) / var, 1e-4 / var) << stem;
      EXPECT_NEAR(row[3], -(row[1] + m) / var, 1e-4 / var) << stem;
    }
  }
  EXPECT_TRUE(is_png(out / "trajectories.png"));
  EXPECT_EQ(read_rows(out / "trajectories.dat").size(), 8u * 21u);  // 8 paths, 20 steps + prior
  // A model that is not 2-D is refused (exit 2) before anything is drawn.
  r = run_scorch("score-plot --config " + config + " --out " + out.string() +
                 " model.name=analytic data.dim=3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
}  // namespace scorch::testing
