// scorch plot and monitor/run_plot.h: a log.jsonl becomes PNG files (checked
// by their signature and IHDR dimensions), series the log lacks are skipped
// with a reason, a resumed run's repeated steps keep the later value, and a
// missing or malformed log, or a missing gnuplot, is a scorch::Error (exit 2
// from the CLI) naming the file, line or package.
#include "monitor/run_plot.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "testing/command.h"   // defines: run_scorch, run_command, mpirun_scorch
#include "testing/files.h"     // defines: read_file, write_bytes, random_bytes, entries
#include "testing/temp_dir.h"  // defines: TempDir

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

struct PngSize {
  bool png = false;
  uint32_t width = 0, height = 0;
};

// The signature and the IHDR chunk (big-endian width and height at 16..23).
PngSize png_size(const fs::path& p) {
  const std::string b = read_file(p);
  PngSize s;
  s.png =
      b.size() > 24 && b.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0 && b.compare(12, 4, "IHDR") == 0;
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
    return v;
  };
  if (s.png) s.width = be32(16), s.height = be32(20);
  return s;
}

void write_lines(const fs::path& p, const std::vector<nlohmann::json>& records,
                 const std::string& tail = "") {
  std::ofstream out(p);
  for (const auto& r : records) out << r.dump() << "\n";
  out << tail;
}

std::vector<nlohmann::json> full_log() {
  std::vector<nlohmann::json> r;
  for (int s = 50; s <= 500; s += 50) {
    r.push_back({{"step", s},
                 {"loss", 1.0 / s},
                 {"loss_q1", 4.0 / s},
                 {"loss_q2", 2.0 / s},
                 {"loss_q3", 1.0 / s},
                 {"loss_q4", 0.5 / s},
                 {"images_per_s", 1000.0 + s},
                 {"lr", 1e-4}});
    if (s % 250 == 0)
      r.push_back(
          {{"step", s},
           {"eval", {{"fid", 5000.0 / s}, {"inception_score", s / 100.0}, {"kid", 1.0 / s}}}});
  }
  return r;
}

TEST(RunPlot, ReadsSeriesAndNestedEvalRecords) {
  TempDir tmp("plot_read");
  auto records = full_log();
  records.push_back({{"step", 450}, {"loss", 7.0}});  // a resumed run redoing step 450
  write_lines(tmp.path / "log.jsonl", records, "{\"step\": 550, \"loss\": 0.");  // cut off
  const auto log = read_run_log_series((tmp.path / "log.jsonl").string());
  EXPECT_EQ(log.records, static_cast<int64_t>(records.size()));
  ASSERT_NE(log.find("loss"), nullptr);
  EXPECT_EQ(log.find("loss")->size(), 10u);
  EXPECT_DOUBLE_EQ(log.find("loss")->at(450), 7.0);
  EXPECT_DOUBLE_EQ(log.find("loss")->at(100), 0.01);
  ASSERT_NE(log.find("eval.fid"), nullptr);
  EXPECT_DOUBLE_EQ(log.find("eval.fid")->at(500), 10.0);
  EXPECT_EQ(log.find("eval.kid")->size(), 2u);
  EXPECT_EQ(log.find("quality.swd"), nullptr);
  EXPECT_EQ(log.find("loss")->count(550), 0u);
}

TEST(RunPlot, WritesPngsOfTheRequestedSize) {
  TempDir tmp("plot_png");
  write_lines(tmp.path / "log.jsonl", full_log());
  const auto log = read_run_log_series((tmp.path / "log.jsonl").string());
  PlotOptions o;
  o.width = 640, o.height = 400;
  const auto result = plot_run_log(log, (tmp.path / "plots").string(), o);
  for (const char* name : {"loss.png", "loss_by_t.png", "throughput.png", "eval.png"}) {
    const auto size = png_size(tmp.path / "plots" / name);
    EXPECT_TRUE(size.png) << name;
    EXPECT_EQ(size.width, 640u) << name;
    EXPECT_GE(size.height, 400u) << name;  // eval.png grows with its panels
    EXPECT_GT(fs::file_size(tmp.path / "plots" / name), 2000u) << name << " looks blank";
  }
  EXPECT_EQ(result.files.size(), 5u);  // 4 PNGs + plots.gp
  EXPECT_TRUE(fs::exists(tmp.path / "plots" / "plots.gp"));
  ASSERT_EQ(result.skipped.count("quality.png"), 1u);
  EXPECT_FALSE(fs::exists(tmp.path / "plots" / "quality.png"));
}

TEST(RunPlot, ALogWithoutEvalOrQuartilesSkipsThoseWithAReason) {
  TempDir tmp("plot_partial");
  write_lines(tmp.path / "log.jsonl",
              {{{"step", 10}, {"loss", 0.5}}, {{"step", 20}, {"loss", 0.4}}});
  const auto log = read_run_log_series((tmp.path / "log.jsonl").string());
  const auto result = plot_run_log(log, (tmp.path / "plots").string(), {});
  EXPECT_TRUE(png_size(tmp.path / "plots" / "loss.png").png);
  for (const char* name : {"loss_by_t.png", "throughput.png", "eval.png", "quality.png"}) {
    ASSERT_EQ(result.skipped.count(name), 1u) << name;
    EXPECT_NE(result.skipped.at(name).find("the log has no"), std::string::npos);
    EXPECT_FALSE(fs::exists(tmp.path / "plots" / name)) << name;
  }
}

TEST(RunPlot, BadLogsAreErrorsNamingFileAndLine) {
  TempDir tmp("plot_bad");
  const auto path = (tmp.path / "log.jsonl").string();
  try {
    read_run_log_series(path);
    FAIL() << "a missing log was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  write_lines(path, {{{"step", 1}, {"loss", 1.0}}}, "not json\n{\"step\": 3}\n");
  try {
    read_run_log_series(path);
    FAIL() << "a malformed line was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2 is not valid JSON"), std::string::npos)
        << e.what();
  }
  write_lines(path, {{{"loss", 1.0}}});
  EXPECT_THROW(read_run_log_series(path), Error);
  write_lines(path, {});
  EXPECT_THROW(read_run_log_series(path), Error);
}

TEST(RunPlot, MissingGnuplotNamesThePackage) {
  TempDir tmp("plot_nognuplot");
  write_lines(tmp.path / "log.jsonl", full_log());
  const auto log = read_run_log_series((tmp.path / "log.jsonl").string());
  PlotOptions o;
  o.gnuplot = "/nonexistent/gnuplot";
  try {
    plot_run_log(log, (tmp.path / "plots").string(), o);
    FAIL() << "plotting without gnuplot succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gnuplot-nox"), std::string::npos) << e.what();
  }
}

// The CLI on the log of a real (short) training run, and its exit codes.
TEST(PlotCli, PlotsARealRunAndRejectsBadLogsWithExit2) {
  TempDir tmp("plot_cli");
  const std::string run = (tmp.path / "run").string();
  const auto train = run_scorch("train --workdir " + run +
                                " training.n_iters=60 training.log_freq=10 "
                                "training.snapshot_sampling=false training.batch_size=64");
  ASSERT_EQ(train.exit_code, 0) << train.output;

  const auto plot = run_scorch("plot --workdir " + run + " --json");
  ASSERT_EQ(plot.exit_code, 0) << plot.output;
  const auto j = nlohmann::json::parse(plot.stdout_only);
  EXPECT_GE(j["records"].get<int>(), 6);
  for (const char* name : {"loss.png", "loss_by_t.png", "throughput.png"}) {
    const auto size = png_size(fs::path(run) / "plots" / name);
    EXPECT_TRUE(size.png) << name;
    EXPECT_EQ(size.width, 1000u) << name;
    EXPECT_EQ(size.height, 600u) << name;
  }
  EXPECT_TRUE(j["skipped"].contains("eval.png"));

  const auto missing = run_scorch("plot --workdir " + (tmp.path / "nothing").string());
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("nothing/log.jsonl"), std::string::npos) << missing.output;

  write_lines(tmp.path / "bad.jsonl", {}, "{\"step\": 1}\n[1, 2]\n");
  const auto bad = run_scorch("plot --log " + (tmp.path / "bad.jsonl").string() + " --out " +
                              (tmp.path / "p").string());
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("line 2"), std::string::npos) << bad.output;

  const auto no_source = run_scorch("plot");
  EXPECT_EQ(no_source.exit_code, 2) << no_source.output;
}

}  // namespace
}  // namespace scorch::testing
