// PNG plots of a run's log.jsonl for people without Grafana: the loss, the
// loss by quartile of t, throughput (images/s) and evaluation metrics (FID,
// Inception Score, KID, precision/recall; 2-D sample quality), drawn by
// gnuplot from a generated script that is kept beside the images.
//
//   auto log = read_run_log_series("runs/c10/log.jsonl");
//   auto result = plot_run_log(log, "runs/c10/plots", {});
//   // result.files: runs/c10/plots/loss.png, throughput.png, ... ; plots.gp
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace scorch {

// step -> value, ascending in step.
using StepSeries = std::map<int64_t, double>;

// The numeric series of a log.jsonl, by name: top-level keys (`loss`,
// `loss_q1`..`loss_q4`, `images_per_s`, ...), and the members of nested
// records as `eval.fid`, `eval.inception_score`, `eval.kid`, `quality.swd`.
// A step logged twice (a resumed run redoes the steps after its last
// checkpoint) keeps the later value.
struct RunLogSeries {
  std::string path;
  int64_t records = 0;
  std::map<std::string, StepSeries> series;

  // The series `name`, or nullptr if the log has none (or it is empty).
  const StepSeries* find(const std::string& name) const;
};

// Reads `path`. Throws scorch::Error naming the file if it is missing or
// unreadable, if a line other than an unterminated last one (a run killed
// while writing) is not a JSON object with an integer "step" (naming the
// line), or if it holds no record at all.
RunLogSeries read_run_log_series(const std::string& path);

struct PlotOptions {
  std::string gnuplot = "gnuplot";  // executable, looked up on PATH
  int width = 1000, height = 600;   // pixels of each PNG
};

struct PlotResult {
  std::vector<std::string> files;              // PNGs written, then the script
  std::map<std::string, std::string> skipped;  // PNG name -> why it was not drawn
};

// Writes loss.png, loss_by_t.png, throughput.png, eval.png and quality.png
// (each only if the log holds its series) and plots.gp into `out_dir`
// (created if missing). Throws scorch::Error if gnuplot is not found (naming
// the Debian package gnuplot-nox) or the directory cannot be written, and
// scorch::RunFailure if gnuplot fails.
PlotResult plot_run_log(const RunLogSeries& log, const std::string& out_dir,
                        const PlotOptions& options);

// Runs `gnuplot script`. Throws scorch::Error if gnuplot cannot be started
// (naming the Debian package gnuplot-nox) and scorch::RunFailure if it fails.
void run_gnuplot(const std::string& gnuplot, const std::string& script);

}  // namespace scorch
