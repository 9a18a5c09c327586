// Plots of a run's log.jsonl (see run_plot.h): the log is read into step
// series, and one gnuplot script with the data inline (datablocks) draws every
// PNG, so the script alone reproduces the plots and can be edited.
#include "monitor/run_plot.h"

#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

extern char** environ;

namespace scorch {
namespace fs = std::filesystem;

const StepSeries* RunLogSeries::find(const std::string& name) const {
  const auto it = series.find(name);
  return it == series.end() || it->second.empty() ? nullptr : &it->second;
}

RunLogSeries read_run_log_series(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCORCH_CHECK(in, "cannot read the run log '", path,
               "': it does not exist or is unreadable (a workdir's log.jsonl is written by "
               "`scorch train`; pass the workdir of a run or --log FILE)");
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();

  RunLogSeries log;
  log.path = path;
  size_t begin = 0;
  for (int64_t line_no = 1; begin < text.size(); ++line_no) {
    size_t end = text.find('\n', begin);
    const bool terminated = end != std::string::npos;
    if (!terminated) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const bool valid = rec.is_object() && rec.contains("step") && rec["step"].is_number_integer();
    if (!valid) {
      if (!terminated) break;  // the last line of a run killed while writing it
      fail(detail::concat("run log '", path, "' line ", line_no,
                          rec.is_discarded() ? " is not valid JSON"
                                             : " is not a JSON object with an integer \"step\"",
                          " (each line of log.jsonl is one record such as {\"step\": 100, "
                          "\"loss\": 0.5})"));
    }
    const int64_t step = rec["step"].get<int64_t>();
    for (const auto& [key, value] : rec.items()) {
      if (key == "step") continue;
      if (value.is_number()) {
        log.series[key][step] = value.get<double>();
      } else if (value.is_object()) {
        for (const auto& [member, v] : value.items())
          if (v.is_number()) log.series[key + "." + member][step] = v.get<double>();
      }
    }
    ++log.records;
  }
  SCORCH_CHECK(log.records > 0, "run log '", path,
               "' holds no records (has the run logged its first interval yet? see "
               "training.log_freq)");
  return log;
}

namespace {

// A gnuplot single-quoted string: the only escape is '' for '.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

struct Line {
  std::string series, title;
};

class ScriptWriter {
 public:
  ScriptWriter(const RunLogSeries& log, const PlotOptions& o) : log_(log), o_(o) {}

  // One PNG with the given lines (those the log has) in one panel.
  bool panel(const std::string& png, const std::string& title, const std::string& ylabel,
             const std::vector<Line>& lines) {
    std::vector<std::pair<std::string, const StepSeries*>> have;
    for (const auto& l : lines)
      if (const auto* s = log_.find(l.series)) have.emplace_back(l.title, s);
    if (have.empty()) return false;
    open(png, o_.height);
    draw(title, ylabel, have);
    out_ << "unset output\n\n";
    return true;
  }

  // One PNG with one panel per metric the log has, stacked.
  bool stacked(const std::string& png, const std::string& title,
               const std::vector<std::pair<Line, std::string>>& metrics) {
    std::vector<std::pair<Line, std::string>> have;
    for (const auto& m : metrics)
      if (log_.find(m.first.series)) have.push_back(m);
    if (have.empty()) return false;
    open(png, std::max(o_.height, 250 * static_cast<int>(have.size())));
    out_ << "set multiplot layout " << have.size() << ",1 title " << quoted(title) << "\n";
    for (const auto& [line, ylabel] : have)
      draw(line.title, ylabel, {{line.title, log_.find(line.series)}});
    out_ << "unset multiplot\nunset output\n\n";
    return true;
  }

  std::string script() const {
    std::ostringstream s;
    s << "# Drawn by `scorch plot` from " << log_.path << "; run `gnuplot plots.gp` to redraw.\n"
      << "# pngcairo draws smoother; libgd's png is the fallback.\n"
      << "term = strstrt(GPVAL_TERMINALS, 'pngcairo') > 0 ? 'pngcairo' : 'png'\n"
      << "set grid\nset xlabel 'step'\nset format y '%g'\n\n"
      << data_.str() << "\n"
      << out_.str();
    return s.str();
  }

 private:
  void open(const std::string& png, int height) {
    out_ << "set terminal @term size " << o_.width << "," << height << " noenhanced\n"
         << "set output " << quoted(png) << "\n";
  }

  void draw(const std::string& title, const std::string& ylabel,
            const std::vector<std::pair<std::string, const StepSeries*>>& lines) {
    bool positive = true;
    for (const auto& l : lines)
      for (const auto& [step, v] : *l.second) positive = positive && std::isfinite(v) && v > 0;
    // Losses and FID span orders of magnitude: a log axis when it can be one.
    const bool log_y = positive && spans_decade(lines);
    out_ << "set title " << quoted(title) << "\nset ylabel " << quoted(ylabel) << "\n"
         << (log_y ? "set logscale y\n" : "unset logscale y\n")
         << (lines.size() > 1 ? "set key top right opaque box\n" : "unset key\n") << "plot ";
    for (size_t i = 0; i < lines.size(); ++i) {
      out_ << (i ? ", " : "") << datablock(*lines[i].second)
           << " using 1:2 with linespoints pointtype 7 pointsize 0.4 linewidth 2 title "
           << quoted(lines[i].first);
    }
    out_ << "\n";
  }

  static bool spans_decade(const std::vector<std::pair<std::string, const StepSeries*>>& lines) {
    double lo = INFINITY, hi = 0;
    for (const auto& l : lines)
      for (const auto& [step, v] : *l.second) lo = std::min(lo, v), hi = std::max(hi, v);
    return hi > 10 * lo;
  }

  // Each series is written once as a datablock ($d0, $d1, ...); non-finite
  // values are left out (gnuplot would stop at them).
  std::string datablock(const StepSeries& s) {
    const auto it = names_.find(&s);
    if (it != names_.end()) return it->second;
    const std::string name = "$d" + std::to_string(names_.size());
    names_[&s] = name;
    data_ << name << " << EOD\n" << std::setprecision(10);
    for (const auto& [step, v] : s)
      if (std::isfinite(v)) data_ << step << " " << v << "\n";
    data_ << "EOD\n";
    return name;
  }

  const RunLogSeries& log_;
  const PlotOptions& o_;
  std::ostringstream data_, out_;
  std::map<const StepSeries*, std::string> names_;
};

}  // namespace

void run_gnuplot(const std::string& gnuplot, const std::string& script) {
  std::vector<std::string> args{gnuplot, script};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, gnuplot.c_str(), nullptr, nullptr, argv.data(), environ);
  SCORCH_CHECK(err == 0, "cannot run '", gnuplot, "' (", std::strerror(err),
               "): `scorch plot` draws with gnuplot; install it (Debian: apt-get install "
               "gnuplot-nox) or pass --gnuplot PATH");
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // posix_spawnp reports a missing program as exit status 127 on some libcs.
  SCORCH_CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 127), "cannot run '", gnuplot,
               "': not found; `scorch plot` draws with gnuplot (Debian: apt-get install "
               "gnuplot-nox) or pass --gnuplot PATH");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw RunFailure(detail::concat(
        "gnuplot failed on '", script, "' (", WIFEXITED(status) ? "exit status " : "signal ",
        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), "); its messages are above"));
}

PlotResult plot_run_log(const RunLogSeries& log, const std::string& out_dir,
                        const PlotOptions& options) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  SCORCH_CHECK(!ec, "cannot create the plot directory '", out_dir, "': ", ec.message());
  const fs::path dir = fs::absolute(out_dir);

  ScriptWriter w(log, options);
  PlotResult result;
  auto add = [&](const std::string& name, bool drawn, const std::string& why) {
    if (drawn)
      result.files.push_back((dir / name).string());
    else
      result.skipped[name] = why;
  };
  add("loss.png",
      w.panel((dir / "loss.png").string(), "Training loss (mean over ranks)", "loss",
              {{"loss", "loss"}}),
      "the log has no \"loss\"");
  add("loss_by_t.png",
      w.panel((dir / "loss_by_t.png").string(), "Training loss by quartile of t", "loss",
              {{"loss_q1", "t in [0, 0.25)"},
               {"loss_q2", "t in [0.25, 0.5)"},
               {"loss_q3", "t in [0.5, 0.75)"},
               {"loss_q4", "t in [0.75, 1]"}}),
      "the log has no \"loss_q1\"..\"loss_q4\"");
  add("throughput.png",
      w.panel((dir / "throughput.png").string(), "Throughput (all ranks)", "images/s",
              {{"images_per_s", "images/s"}}),
      "the log has no \"images_per_s\"");
  add("eval.png",
      w.stacked((dir / "eval.png").string(), "Evaluation during training",
                {{{"eval.fid", "FID (lower is better)"}, "FID"},
                 {{"eval.inception_score", "Inception Score (higher is better)"}, "IS"},
                 {{"eval.kid", "KID (lower is better)"}, "KID"},
                 {{"eval.precision", "precision"}, "precision"},
                 {{"eval.recall", "recall"}, "recall"}}),
      "the log has no eval records (eval.fid, eval.inception_score, eval.kid)");
  add("quality.png",
      w.panel((dir / "quality.png").string(), "Sample quality (2-D data): sliced Wasserstein",
              "SW1",
              {{"quality.swd", "EMA samples"},
               {"quality.swd_floor", "floor (held-out data)"},
               {"quality.swd_gaussian", "Gaussian baseline"}}),
      "the log has no quality records (2-D data)");

  const auto script = (dir / "plots.gp").string();
  {
    std::ofstream out(script, std::ios::binary | std::ios::trunc);
    out << w.script();
    SCORCH_CHECK(out.good(), "cannot write '", script, "'");
  }
  // Old PNGs of series the log no longer has would mislead: remove them.
  for (const auto& [name, why] : result.skipped) fs::remove(dir / name, ec);
  run_gnuplot(options.gnuplot, script);
  for (const auto& f : result.files)
    if (!fs::exists(f)) throw RunFailure("gnuplot ran but did not write '" + f + "'");
  result.files.push_back(script);
  return result;
}

}  // namespace scorch
