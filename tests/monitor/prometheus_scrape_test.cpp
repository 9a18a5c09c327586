// End to end with a real Prometheus server (Debian package prometheus): a
// 2-rank CPU training run under mpirun serves metrics on two loopback ports,
// rank 0 lists them in a file_sd target file in Prometheus's targets
// directory, Prometheus discovers and scrapes both, and its HTTP API returns
// scorch_train_loss for both ranks equal to the run's final loss in log.jsonl.
// Also the CLI side of the endpoint: a port in use ends the run with exit 2
// and a message naming the address and monitor.port; with monitor.enabled
// false nothing binds. A Prometheus that cannot start fails the test.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <thread>

#include "testing/command.h"   // defines: run_scorch, run_command, mpirun_scorch
#include "testing/files.h"     // defines: read_file, write_bytes, random_bytes, entries
#include "testing/http.h"      // defines: http_get, PortHolder, free_port_range
#include "testing/temp_dir.h"  // defines: TempDir

extern char** environ;

namespace scorch::testing {
namespace {

namespace fs = std::filesystem;

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// A Prometheus server on 127.0.0.1 with a 1 s scrape interval, its storage,
// config and file_sd targets directory under a temporary directory; stopped
// (SIGTERM, then SIGKILL) by the destructor.
class PrometheusServer {
 public:
  explicit PrometheusServer(const TempDir& dir) : dir_(dir.path) {
    fs::create_directories(targets_dir());
    port_ = free_port_range(1);
    std::ofstream(dir_ / "prometheus.yml")
        << "global:\n"
           "  scrape_interval: 1s\n"
           "  scrape_timeout: 1s\n"
           "  evaluation_interval: 1s\n"
           "rule_files:\n"
           "  - '" << SCORCH_SOURCE_DIR << "/monitoring/alerts.yml'\n"
           "scrape_configs:\n"
           "  - job_name: scorch\n"
           "    file_sd_configs:\n"
           "      - files: ['" << targets_dir().string() << "/*.json']\n"
           "        refresh_interval: 1s\n";
    const std::vector<std::string> args = {
        "prometheus",
        "--config.file=" + (dir_ / "prometheus.yml").string(),
        "--storage.tsdb.path=" + (dir_ / "data").string(),
        "--web.listen-address=127.0.0.1:" + std::to_string(port_),
        "--log.level=info"};
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = log_path().string();
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int rc = posix_spawnp(&pid_, "prometheus", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) pid_ = -1;
  }
  ~PrometheusServer() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  // Waits for /-/ready; false if the server did not start or exited.
  bool wait_ready(double seconds) {
    if (pid_ <= 0 || port_ == 0) return false;
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (http_get(port_, "/-/ready").status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }

  // An instant query through /api/v1/query: the "result" array.
  nlohmann::json query(const std::string& promql) const {
    const auto r = http_get(port_, "/api/v1/query?query=" + url_encode(promql));
    EXPECT_EQ(r.status, 200) << promql << ": " << r.body;
    const auto doc = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || doc.value("status", "") != "success") {
      ADD_FAILURE() << promql << ": " << r.body;
      return nlohmann::json::array();
    }
    return doc["data"]["result"];
  }

  // Polls `promql` until it returns `count` series (or `seconds` pass).
  nlohmann::json query_until(const std::string& promql, size_t count, double seconds) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    nlohmann::json result;
    do {
      result = query(promql);
      if (result.size() >= count) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    } while (std::chrono::steady_clock::now() < end);
    return result;
  }

  std::string get(const std::string& target) const { return http_get(port_, target).body; }
  fs::path targets_dir() const { return dir_ / "targets"; }
  fs::path log_path() const { return dir_ / "prometheus.log"; }
  int port() const { return port_; }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// The value of one series in a query result.
double value_of(const nlohmann::json& series) {
  return std::stod(series.at("value").at(1).get<std::string>());
}

TEST(PrometheusScrape, TwoRankTrainingRunIsDiscoveredAndScraped) {
  TempDir dir("prometheus");
  PrometheusServer prometheus(dir);
  ASSERT_TRUE(prometheus.wait_ready(90))
      << "Prometheus did not start (is the Debian package prometheus installed? "
         "launch/install_deps.sh installs it). Its log:\n"
      << read_file(prometheus.log_path());
  // The shipped alert rules load into the real server.
  EXPECT_NE(prometheus.get("/api/v1/rules").find("ScorchRankDown"), std::string::npos);

  const int base = free_port_range(2);
  ASSERT_GT(base, 0);
  const auto workdir = dir.path / "run-prom";
  const auto targets_file = prometheus.targets_dir() / "scorch-run.json";
  const int64_t steps = 300, batch = 12;
  const auto r = mpirun_scorch(
      2, "train --workdir " + workdir.string() + " training.n_iters=" + std::to_string(steps) +
             " training.batch_size=" + std::to_string(batch) +
             " training.log_freq=1 training.snapshot_sampling=false optim.warmup=0 "
             "monitor.enabled=true monitor.bind=127.0.0.1 monitor.port=" +
             std::to_string(base) + " monitor.targets_file=" + targets_file.string() +
             " monitor.linger_s=5 dist.backend=gloo");  // the Gloo path; mpi is tested alike
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("metrics: http://127.0.0.1:" + std::to_string(base) + "/metrics"),
            std::string::npos)
      << r.output;
  // A run that ended leaves Prometheus's targets.
  EXPECT_FALSE(fs::exists(targets_file));

  // The final loss, as rank 0 logged it (log_freq 1: the last step's mean loss).
  double final_loss = std::nan("");
  {
    std::ifstream log(workdir / "log.jsonl");
    std::string line;
    while (std::getline(log, line)) {
      const auto rec = nlohmann::json::parse(line);
      if (rec.contains("loss") && rec.value("step", int64_t{0}) == steps)
        final_loss = rec["loss"].get<double>();
    }
  }
  ASSERT_TRUE(std::isfinite(final_loss));

  // The target is gone now, so read each series' last scraped value.
  const std::string sel = "{job=\"scorch\",run=\"run-prom\"}";
  const auto loss = prometheus.query_until("last_over_time(scorch_train_loss" + sel + "[10m])", 2, 20);
  ASSERT_EQ(loss.size(), 2u) << loss.dump() << "\nPrometheus log:\n"
                             << read_file(prometheus.log_path());
  std::set<std::string> ranks, instances;
  for (const auto& series : loss) {
    ranks.insert(series["metric"]["rank"].get<std::string>());
    instances.insert(series["metric"]["instance"].get<std::string>());
    EXPECT_EQ(series["metric"]["local_rank"], series["metric"]["rank"]);  // one node
    EXPECT_NEAR(value_of(series), final_loss, 1e-9 * std::abs(final_loss)) << series.dump();
  }
  EXPECT_EQ(ranks, (std::set<std::string>{"0", "1"}));
  EXPECT_EQ(instances, (std::set<std::string>{"127.0.0.1:" + std::to_string(base),
                                              "127.0.0.1:" + std::to_string(base + 1)}));

  // Counters and the step gauge of the final step on both ranks.
  for (const auto& series : prometheus.query("last_over_time(scorch_train_step" + sel + "[10m])"))
    EXPECT_EQ(value_of(series), steps) << series.dump();
  const auto images =
      prometheus.query("sum(last_over_time(scorch_train_images_total" + sel + "[10m]))");
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(value_of(images[0]), steps * batch);  // each rank counts its half of the batch
  const auto durations = prometheus.query(
      "last_over_time(scorch_train_step_duration_seconds_count" + sel + "[10m])");
  ASSERT_EQ(durations.size(), 2u);
  for (const auto& series : durations) EXPECT_EQ(value_of(series), steps);
  // Checkpoints come from rank 0 only.
  const auto checkpoint =
      prometheus.query("last_over_time(scorch_checkpoint_last_step" + sel + "[10m])");
  ASSERT_EQ(checkpoint.size(), 1u);
  EXPECT_EQ(checkpoint[0]["metric"]["rank"], "0");
  EXPECT_EQ(value_of(checkpoint[0]), steps);
  // Both endpoints answered Prometheus.
  const auto up = prometheus.query("max_over_time(up" + sel + "[10m])");
  ASSERT_EQ(up.size(), 2u);
  for (const auto& series : up) EXPECT_EQ(value_of(series), 1) << series.dump();
}

TEST(PrometheusScrape, PortInUseEndsTheRunNamingKeyAndAddress) {
  TempDir dir("prometheus_port");
  PortHolder held;
  ASSERT_TRUE(held.ok());
  const auto r = run_scorch("train --workdir " + dir.str() +
                            " training.n_iters=2 training.snapshot_sampling=false "
                            "monitor.enabled=true monitor.port=" + std::to_string(held.port));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("127.0.0.1:" + std::to_string(held.port)), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("monitor.port"), std::string::npos) << r.output;
}

TEST(PrometheusScrape, DisabledMonitorBindsNothing) {
  TempDir dir("prometheus_off");
  PortHolder held;  // were the endpoint started, this port would be in use
  ASSERT_TRUE(held.ok());
  const auto r = run_scorch("train --workdir " + dir.str() +
                            " training.n_iters=2 training.snapshot_sampling=false "
                            "monitor.enabled=false monitor.port=" + std::to_string(held.port) +
                            " monitor.targets_file=" + (dir.path / "t.json").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("metrics:"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.path / "t.json"));
}

}  // namespace
}  // namespace scorch::testing
