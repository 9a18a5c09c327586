// monitoring/ against the real tools and against what Scorch exports:
// promtool checks the Prometheus config and the alert rules and runs their unit
// tests (tests/monitor/alerts_test.yml); the Grafana dashboard is valid JSON
// with a fixed uid and a datasource variable, and every PromQL expression in it
// and in the alert rules names only metrics that a live endpoint serves (or the
// monitoring/README.md documents as CUDA-only) plus Prometheus's `up`; its metrics
// table lists every metric the endpoint serves.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "monitor/metrics.h"
#include "testing/command.h"  // defines: run_scorch, run_command, mpirun_scorch
#include "testing/files.h"    // defines: read_file, write_bytes, random_bytes, entries
#include "testing/http.h"     // defines: http_get, PortHolder, free_port_range

namespace scorch::testing {
namespace {

const std::string kSource = SCORCH_SOURCE_DIR;

// Metric names a PromQL expression reads: identifiers that are not functions,
// aggregation operators, keywords, label names in by/without/on/ignoring
// clauses, label matchers, strings, durations or Grafana variables.
std::set<std::string> metric_names_in(std::string expr) {
  static const std::regex strings(R"re("(?:[^"\\]|\\.)*")re");
  static const std::regex matchers(R"(\{[^}]*\})");
  static const std::regex ranges(R"(\[[^\]]*\])");
  static const std::regex clauses(R"(\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))");
  static const std::regex variables(R"(\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?)");
  static const std::regex ident(R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?)");
  static const std::set<std::string> keywords = {
      "sum",  "avg",    "max",    "min", "count",  "stddev", "stdvar", "topk", "bottomk",
      "quantile", "count_values", "group", "and", "or", "unless", "bool", "offset", "by",
      "without", "on", "ignoring", "group_left", "group_right", "Inf", "NaN", "inf", "nan"};
  expr = std::regex_replace(expr, strings, " ");
  expr = std::regex_replace(expr, matchers, " ");
  expr = std::regex_replace(expr, ranges, " ");
  expr = std::regex_replace(expr, clauses, " ");
  expr = std::regex_replace(expr, variables, " ");
  std::set<std::string> names;
  for (std::sregex_iterator it(expr.begin(), expr.end(), ident), end; it != end; ++it) {
    const std::string word = (*it)[1];
    if ((*it)[2].matched || keywords.count(word)) continue;  // a function call or keyword
    if (word == "e") continue;  // the exponent of a number such as 1e-3
    names.insert(word);
  }
  return names;
}

TEST(MonitoringFiles, MetricNameExtraction) {
  EXPECT_EQ(metric_names_in(R"(histogram_quantile(0.9, sum by (run, le) (rate(scorch_train_step_duration_seconds_bucket{run=~"$run"}[$__rate_interval]))))"),
            std::set<std::string>{"scorch_train_step_duration_seconds_bucket"});
  EXPECT_EQ(metric_names_in(R"(scorch_train_loss != scorch_train_loss or abs(scorch_train_loss) == +Inf)"),
            std::set<std::string>{"scorch_train_loss"});
  EXPECT_EQ(metric_names_in(R"(up{job="scorch"} == 0)"), std::set<std::string>{"up"});
}

// What a live endpoint serves once every kind of value was recorded: sample
// names, and histogram base names (name_bucket/_sum/_count) too.
std::set<std::string> exported_names() {
  Metrics m(MetricsOptions{"127.0.0.1", 0, 0, 0});
  m.record_step(StepMetrics{});
  m.record_checkpoint(1, 0.1);
  m.record_eval(1, {{"fid", 1.0}, {"inception_score", 2.0}, {"kid", 0.1}});
  const auto r = http_get(m.port(), "/metrics");
  EXPECT_EQ(r.status, 200);
  std::set<std::string> names;
  static const std::regex line_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ])");
  static const std::regex type_re(R"(^# TYPE (\S+) histogram$)");
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, line_re)) names.insert(m[1]);
    if (std::regex_match(line, m, type_re)) names.insert(m[1]);
  }
  return names;
}

// Metric names in monitoring/README.md's metrics table: rows "| `scorch_...` | ...".
std::set<std::string> documented_names() {
  const std::string readme = read_file(kSource + "/monitoring/README.md");
  static const std::regex row(R"(\n\| `(scorch_[a-z_]+)`)");
  std::set<std::string> names;
  for (std::sregex_iterator it(readme.begin(), readme.end(), row), end; it != end; ++it)
    names.insert((*it)[1]);
  return names;
}

// Every series a PromQL expression reads must exist: served by the endpoint,
// Prometheus's own `up`, or (GPU memory) documented as CUDA-only.
void expect_known_metrics(const std::string& expr, const std::string& where,
                          const std::set<std::string>& exported,
                          const std::set<std::string>& documented, std::set<std::string>* used) {
  const auto names = metric_names_in(expr);
  EXPECT_FALSE(names.empty()) << where << ": no metric in '" << expr << "'";
  for (const auto& name : names) {
    used->insert(name);
    if (name == "up" || exported.count(name)) continue;
    const bool cuda_only = name.rfind("scorch_gpu_memory_", 0) == 0 && documented.count(name);
    EXPECT_TRUE(cuda_only) << where << ": '" << name << "' in '" << expr
                           << "' is not a metric Scorch exports";
  }
}

TEST(MonitoringFiles, ReadmeDocumentsEveryServedMetric) {
  const auto exported = exported_names();
  const auto documented = documented_names();
  ASSERT_GE(documented.size(), 20u) << "monitoring/README.md has no metrics table";
  int served = 0;
  for (const auto& name : exported) {
    if (name.rfind("scorch_", 0) != 0) continue;  // exposer_* self-metrics
    const bool histogram_part = std::regex_search(name, std::regex("_(bucket|sum|count)$")) &&
                                exported.count(std::regex_replace(name, std::regex("_(bucket|sum|count)$"), ""));
    if (histogram_part) continue;
    ++served;
    EXPECT_TRUE(documented.count(name)) << name << " is served but not in monitoring/README.md's table";
  }
  EXPECT_GE(served, 20);
  for (const auto& name : documented)
    EXPECT_TRUE(exported.count(name) || name.rfind("scorch_gpu_memory_", 0) == 0)
        << name << " is in monitoring/README.md's table but not served";
}

TEST(MonitoringFiles, GrafanaDashboardIsValidAndReadsExportedMetrics) {
  const auto path = kSource + "/monitoring/grafana/dashboards/scorch-training.json";
  const std::string text = read_file(path);
  ASSERT_FALSE(text.empty()) << path;
  nlohmann::json dash;
  ASSERT_NO_THROW(dash = nlohmann::json::parse(text)) << path;
  EXPECT_TRUE(dash.at("id").is_null());  // provisioned dashboards get their id from Grafana
  EXPECT_EQ(dash.at("uid"), "scorch-training");
  bool datasource_variable = false;
  for (const auto& v : dash.at("templating").at("list"))
    if (v.at("type") == "datasource" && v.at("name") == "datasource" && v.at("query") == "prometheus")
      datasource_variable = true;
  EXPECT_TRUE(datasource_variable) << "no datasource variable";

  const auto exported = exported_names();
  const auto documented = documented_names();
  std::set<std::string> used, titles;
  std::set<int64_t> ids;
  int queries = 0;
  bool quantiles = false;
  for (const auto& panel : dash.at("panels")) {
    EXPECT_TRUE(ids.insert(panel.at("id").get<int64_t>()).second) << "duplicate panel id";
    if (panel.at("type") == "row") continue;
    const std::string title = panel.at("title");
    titles.insert(title);
    EXPECT_EQ(panel.at("datasource").at("uid"), "${datasource}") << title;
    ASSERT_TRUE(panel.contains("targets")) << title;
    for (const auto& target : panel.at("targets")) {
      const std::string expr = target.at("expr");
      ++queries;
      quantiles |= expr.find("histogram_quantile(") != std::string::npos;
      expect_known_metrics(expr, "dashboard panel '" + title + "'", exported, documented, &used);
    }
  }
  EXPECT_GE(queries, 15);
  EXPECT_TRUE(quantiles) << "no step-time quantiles via histogram_quantile";
  for (const char* name :
       {"scorch_train_loss", "scorch_train_loss_by_quartile", "scorch_train_images_total",
        "scorch_train_step_duration_seconds_bucket", "scorch_train_data_wait_seconds_total",
        "scorch_train_allreduce_wait_seconds_total", "scorch_gpu_memory_allocated_bytes",
        "scorch_eval_fid", "scorch_eval_inception_score", "scorch_eval_kid"})
    EXPECT_TRUE(used.count(name)) << "the dashboard shows no " << name;
}

TEST(MonitoringFiles, AlertRulesReadExportedMetrics) {
  const auto rules = YAML::LoadFile(kSource + "/monitoring/alerts.yml");
  const auto exported = exported_names();
  const auto documented = documented_names();
  std::set<std::string> alerts, used;
  for (const auto& group : rules["groups"])
    for (const auto& rule : group["rules"]) {
      const auto name = rule["alert"].as<std::string>();
      alerts.insert(name);
      expect_known_metrics(rule["expr"].as<std::string>(), "alert " + name, exported, documented,
                           &used);
    }
  EXPECT_EQ(alerts, (std::set<std::string>{"ScorchNonFiniteLoss", "ScorchSkippedStepsRising",
                                           "ScorchThroughputStalled", "ScorchRankDown"}));
  EXPECT_TRUE(used.count("up"));
}

TEST(MonitoringFiles, GrafanaProvisioning) {
  const auto ds = YAML::LoadFile(kSource + "/monitoring/grafana/provisioning/datasources/prometheus.yml");
  EXPECT_EQ(ds["apiVersion"].as<int>(), 1);
  ASSERT_EQ(ds["datasources"].size(), 1u);
  EXPECT_EQ(ds["datasources"][0]["type"].as<std::string>(), "prometheus");
  EXPECT_EQ(ds["datasources"][0]["access"].as<std::string>(), "proxy");
  const auto dash = YAML::LoadFile(kSource + "/monitoring/grafana/provisioning/dashboards/scorch.yml");
  EXPECT_EQ(dash["apiVersion"].as<int>(), 1);
  ASSERT_EQ(dash["providers"].size(), 1u);
  const auto provider = dash["providers"][0];
  EXPECT_EQ(provider["type"].as<std::string>(), "file");
  // Grafana rejects a folder name together with foldersFromFilesStructure.
  if (provider["options"]["foldersFromFilesStructure"].as<bool>(false))
    EXPECT_EQ(provider["folder"].as<std::string>(""), "");
  EXPECT_FALSE(provider["options"]["path"].as<std::string>("").empty());
}

// promtool (Debian package prometheus): exit 0 and SUCCESS, or the test fails
// with its output (a missing promtool fails too: exit 127).
void expect_promtool(const std::string& args) {
  const auto r = run_command("promtool " + args);
  EXPECT_EQ(r.exit_code, 0) << "promtool " << args << ":\n" << r.output;
  EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << r.output;
}

TEST(MonitoringFiles, PromtoolChecksConfig) {
  expect_promtool("check config " + kSource + "/monitoring/prometheus.yml");
}

TEST(MonitoringFiles, PromtoolChecksRules) {
  expect_promtool("check rules " + kSource + "/monitoring/alerts.yml");
}

TEST(MonitoringFiles, AlertRuleUnitTests) {
  expect_promtool("test rules " + kSource + "/tests/monitor/alerts_test.yml");
}

}  // namespace
}  // namespace scorch::testing
