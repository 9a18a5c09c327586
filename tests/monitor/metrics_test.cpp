// The metrics endpoint over real HTTP on loopback: every documented metric
// name is served with the rank labels, recorded values come back in the text
// format, eval and checkpoint series appear with their first value, a port in
// use is a scorch::Error naming the address and monitor.port, and file_sd
// target files are valid JSON written atomically.
#include "monitor/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "monitor/scrape_targets.h"
#include "testing/files.h"     // defines: read_file, write_bytes, random_bytes, entries
#include "testing/http.h"      // defines: http_get, PortHolder, free_port_range
#include "testing/temp_dir.h"  // defines: TempDir

namespace scorch::testing {
namespace {

// The value of the sample `name` whose labels are exactly `labels` (order
// free), or NaN if there is none. Lines: name{k="v",...} value
double sample(const std::string& text, const std::string& name,
              std::map<std::string, std::string> labels = {}) {
  labels.emplace("rank", "0");
  labels.emplace("local_rank", "0");
  static const std::regex line_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$)");
  static const std::regex label_re(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)")re");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, line_re) || m[1] != name) continue;
    std::map<std::string, std::string> found;
    const std::string body = m[2];
    for (std::sregex_iterator it(body.begin(), body.end(), label_re), end; it != end; ++it)
      found[(*it)[1]] = (*it)[2];
    if (found == labels) return std::stod(m[3]);
  }
  return std::nan("");
}

std::string scrape(const Metrics& m) {
  const auto r = http_get(m.port(), "/metrics");
  EXPECT_EQ(r.status, 200);
  return r.body;
}

TEST(Metrics, ServesEveryTrainingMetricWithRankLabels) {
  Metrics m(MetricsOptions{"127.0.0.1", 0, /*rank=*/3, /*local_rank=*/1});
  ASSERT_GT(m.port(), 0);
  EXPECT_EQ(m.target(), "127.0.0.1:" + std::to_string(m.port()));
  const std::string text = scrape(m);
  for (const char* name :
       {"scorch_train_loss", "scorch_train_loss_by_quartile", "scorch_train_step",
        "scorch_train_steps_total", "scorch_train_images_total", "scorch_train_skipped_steps_total",
        "scorch_train_images_per_second", "scorch_train_step_duration_seconds_count",
        "scorch_train_data_wait_seconds_total", "scorch_train_allreduce_wait_seconds_total",
        "scorch_train_grad_norm", "scorch_train_learning_rate", "scorch_train_loss_scale",
        "scorch_build_info"}) {
    EXPECT_NE(text.find("\n" + std::string(name) + "{"), std::string::npos) << name << "\n" << text;
  }
  // Every scorch_ sample line carries both rank labels.
  std::istringstream in(text);
  std::string line;
  int samples = 0;
  while (std::getline(in, line)) {
    if (line.rfind("scorch_", 0) != 0) continue;
    ++samples;
    EXPECT_NE(line.find("rank=\"3\""), std::string::npos) << line;
    EXPECT_NE(line.find("local_rank=\"1\""), std::string::npos) << line;
  }
  EXPECT_GE(samples, 14 + 3 + 15);  // + 3 more quartiles, + histogram buckets
  // CPU: no GPU memory series (documented: absent without CUDA).
  EXPECT_EQ(text.find("scorch_gpu_memory_allocated_bytes{"), std::string::npos);
  // Not before the first eval / checkpoint: an FID of 0 would read as perfect.
  EXPECT_EQ(text.find("scorch_eval_fid{"), std::string::npos);
  EXPECT_EQ(text.find("scorch_checkpoint_last_step{"), std::string::npos);
  EXPECT_NE(text.find("scorch_build_info{"), std::string::npos);
  EXPECT_NE(text.find("version=\""), std::string::npos);
}

TEST(Metrics, RecordedValuesAreServed) {
  Metrics m(MetricsOptions{"127.0.0.1", 0, 0, 0});
  StepMetrics s;
  s.step = 41;
  s.images = 6;
  s.seconds = 0.03;
  s.data_wait_seconds = 0.01;
  s.allreduce_wait_seconds_total = 0.5;
  s.loss = 1.25;
  s.loss_by_quartile[0] = 2.5;
  s.loss_by_quartile[1] = std::nan("");  // no sample in this quartile: left as it was
  s.loss_by_quartile[2] = 0.75;
  s.loss_by_quartile[3] = 0.5;
  s.grad_norm = 3.0;
  s.learning_rate = 2e-4;
  s.loss_scale = 65536;
  m.record_step(s);
  s.step = 42;
  s.loss = std::numeric_limits<double>::infinity();
  s.skipped = true;
  s.grad_norm = std::nan("");
  s.allreduce_wait_seconds_total = 0.75;
  s.seconds = 3.0;
  m.record_step(s);
  m.record_throughput(123.5);
  m.record_checkpoint(40, 0.25);
  m.record_eval(40, {{"fid", 12.5}, {"inception_score", 7.25}, {"kid", 0.004}, {"other", "x"}});

  const std::string t = scrape(m);
  EXPECT_EQ(sample(t, "scorch_train_step"), 42);
  EXPECT_EQ(sample(t, "scorch_train_steps_total"), 2);
  EXPECT_EQ(sample(t, "scorch_train_images_total"), 12);
  EXPECT_EQ(sample(t, "scorch_train_skipped_steps_total"), 1);
  EXPECT_TRUE(std::isinf(sample(t, "scorch_train_loss")));  // a non-finite step shows
  EXPECT_EQ(sample(t, "scorch_train_grad_norm"), 3.0);      // kept from the good step
  EXPECT_DOUBLE_EQ(sample(t, "scorch_train_learning_rate"), 2e-4);
  EXPECT_EQ(sample(t, "scorch_train_loss_scale"), 65536);
  EXPECT_DOUBLE_EQ(sample(t, "scorch_train_data_wait_seconds_total"), 0.02);
  EXPECT_DOUBLE_EQ(sample(t, "scorch_train_allreduce_wait_seconds_total"), 0.75);
  EXPECT_EQ(sample(t, "scorch_train_images_per_second"), 123.5);
  EXPECT_EQ(sample(t, "scorch_train_loss_by_quartile", {{"quartile", "1"}}),
            2.5);
  EXPECT_EQ(sample(t, "scorch_train_loss_by_quartile", {{"quartile", "2"}}),
            0);
  EXPECT_EQ(sample(t, "scorch_train_loss_by_quartile", {{"quartile", "3"}}),
            0.75);
  // Histogram: 0.03 s and 3 s; cumulative buckets.
  EXPECT_EQ(sample(t, "scorch_train_step_duration_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(sample(t, "scorch_train_step_duration_seconds_sum"), 3.03);
  EXPECT_EQ(sample(t, "scorch_train_step_duration_seconds_bucket", {{"le", "0.025"}}),
            0);
  EXPECT_EQ(sample(t, "scorch_train_step_duration_seconds_bucket", {{"le", "0.05"}}),
            1);
  EXPECT_EQ(sample(t, "scorch_train_step_duration_seconds_bucket", {{"le", "+Inf"}}),
            2);
  EXPECT_EQ(sample(t, "scorch_checkpoint_last_step"), 40);
  EXPECT_EQ(sample(t, "scorch_checkpoint_duration_seconds"), 0.25);
  EXPECT_EQ(sample(t, "scorch_eval_fid"), 12.5);
  EXPECT_EQ(sample(t, "scorch_eval_inception_score"), 7.25);
  EXPECT_DOUBLE_EQ(sample(t, "scorch_eval_kid"), 0.004);
  EXPECT_EQ(sample(t, "scorch_eval_step"), 40);
}

TEST(Metrics, RecordEvalTakesOnlyTheKeysPresent) {
  Metrics m(MetricsOptions{"127.0.0.1", 0, 0, 0});
  m.record_eval(10, {{"swd", 0.1}});  // none of fid/inception_score/kid: nothing appears
  std::string t = scrape(m);
  EXPECT_TRUE(std::isnan(sample(t, "scorch_eval_step")));
  m.record_eval(20, {{"fid", 30.0}});
  m.record_eval(30, {{"kid", 0.01}, {"fid", nullptr}});  // a null FID leaves the last one
  t = scrape(m);
  EXPECT_EQ(sample(t, "scorch_eval_fid"), 30.0);
  EXPECT_EQ(sample(t, "scorch_eval_kid"), 0.01);
  EXPECT_TRUE(std::isnan(sample(t, "scorch_eval_inception_score")));
  EXPECT_EQ(sample(t, "scorch_eval_step"), 30);
}

TEST(Metrics, PortIsBasePlusLocalRank) {
  const int base = free_port_range(3);
  ASSERT_GT(base, 0);
  Metrics m(MetricsOptions{"127.0.0.1", base, /*rank=*/5, /*local_rank=*/2});
  EXPECT_EQ(m.port(), base + 2);
  EXPECT_EQ(http_get(base + 2, "/metrics").status, 200);
}

TEST(Metrics, PortInUseIsAnErrorNamingAddressAndKey) {
  PortHolder held;
  ASSERT_TRUE(held.ok());
  try {
    Metrics m(MetricsOptions{"127.0.0.1", held.port, 0, 0});
    FAIL() << "a second server bound port " << held.port;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(held.port)), std::string::npos) << what;
    EXPECT_NE(what.find("monitor.port"), std::string::npos) << what;
    EXPECT_NE(what.find("in use"), std::string::npos) << what;
  }
  // The same with the port taken by another Scorch endpoint.
  Metrics first(MetricsOptions{"127.0.0.1", 0, 0, 0});
  EXPECT_THROW(Metrics(MetricsOptions{"127.0.0.1", first.port(), 1, 0}), Error);
  // base + local rank past the last TCP port.
  EXPECT_THROW(Metrics(MetricsOptions{"127.0.0.1", 65535, 0, 1}), Error);
}

TEST(ScrapeTargets, WritesFileSdJsonAtomically) {
  TempDir dir("scrape_targets");
  const auto path = dir.path / "targets" / "run.json";  // directory made on demand
  write_scrape_targets(path.string(), {"node01:9400", "node01:9401"},
                       {{"job", "scorch"}, {"run", "r1"}});
  const auto doc = nlohmann::json::parse(read_file(path));
  ASSERT_TRUE(doc.is_array());
  ASSERT_EQ(doc.size(), 1u);
  EXPECT_EQ(doc[0]["targets"], nlohmann::json({"node01:9400", "node01:9401"}));
  EXPECT_EQ(doc[0]["labels"], nlohmann::json({{"job", "scorch"}, {"run", "r1"}}));
  // Rewritten in place; no temporary file left beside it.
  write_scrape_targets(path.string(), {"a:1"}, {{"job", "scorch"}});
  EXPECT_EQ(nlohmann::json::parse(read_file(path))[0]["targets"], nlohmann::json({"a:1"}));
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(path.parent_path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
  remove_scrape_targets(path.string());
  EXPECT_FALSE(std::filesystem::exists(path));
  remove_scrape_targets(path.string());  // absent: no error
  // A path that cannot be written names the key.
  try {
    write_scrape_targets("/proc/scorch/targets.json", {"a:1"}, {});
    FAIL() << "wrote into /proc";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("monitor.targets_file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace scorch::testing
