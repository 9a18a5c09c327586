// Prometheus metrics of a training run (prometheus-cpp 1.0.1): one HTTP
// endpoint per rank at monitor.bind:(monitor.port + local rank)/metrics.
// Names follow Prometheus practice: prefix scorch_, base units (seconds,
// bytes), counters end in _total, and every series carries the labels rank and
// local_rank. The README's "Monitoring" section lists every metric.
//
//   Metrics metrics(MetricsOptions{"127.0.0.1", 9464, ctx.rank, ctx.local_rank});
//   metrics.record_step(step_metrics);                  // after each optimizer step
//   metrics.record_eval(step, {{"fid", 3.1}, {"kid", 0.002}});
//
// Thread safety: the record_* methods are called by the training thread; the
// endpoint's own thread reads the values concurrently (prometheus-cpp's
// metrics are thread-safe). Not copyable or movable.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

namespace prometheus {
template <typename T>
class Family;
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace scorch {

struct MetricsOptions {
  std::string bind = "127.0.0.1";  // monitor.bind; "0.0.0.0" = every interface
  int64_t base_port = 9464;        // monitor.port; this rank serves base_port + local_rank;
                                   // 0 = any free port (tests), see port()
  int rank = 0;
  int local_rank = 0;
  torch::Device device = torch::kCPU;  // CUDA: GPU memory gauges (CUDA builds only)
};

// What one optimizer step did, as the trainer knows it after the step.
struct StepMetrics {
  int64_t step = 0;               // optimizer steps completed, this one included
  int64_t images = 0;             // images this rank trained on in this step
  double seconds = 0;             // wall time of the whole step on this rank
  double data_wait_seconds = 0;   // of which waiting for the batch
  double allreduce_wait_seconds_total = 0;  // gradient all-reduce waits so far (GradSync)
  double loss = 0;                // mean loss over all ranks; NaN/inf for a non-finite step
  double loss_by_quartile[4] = {0, 0, 0, 0};  // mean loss by quartile of t; NaN = no sample
  double grad_norm = 0;           // global gradient norm before clipping
  double learning_rate = 0;
  double loss_scale = 1;          // fp16 dynamic loss scale; 1 without scaling
  bool skipped = false;           // non-finite loss or gradients: no update
};

class Metrics {
 public:
  // Registers every metric and starts serving. Throws scorch::Error naming the
  // address, port and monitor.port when the port is in use (or the address is
  // not one of this machine's), or when base_port + local_rank > 65535.
  explicit Metrics(const MetricsOptions& options);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The port this endpoint listens on (base_port + local_rank, or the free
  // port picked for base_port 0).
  int port() const;
  // "host:port" as Prometheus should scrape it: the bind address, or this
  // machine's host name when bound to every interface (0.0.0.0, ::, empty).
  std::string target() const;

  // Per optimizer step: counters, step-time histogram and the latest values.
  void record_step(const StepMetrics& step);
  // Images per second of this rank over the last logging interval.
  void record_throughput(double images_per_second);
  // A checkpoint written at `step` in `seconds` (rank 0 writes them).
  void record_checkpoint(int64_t step, double seconds);
  // An evaluation at training step `step`: reads the keys "fid",
  // "inception_score" and "kid" of `report` where present and numeric (other
  // keys are ignored) and sets scorch_eval_* and scorch_eval_step.
  void record_eval(int64_t step, const nlohmann::json& report);
  // Keeps serving for `seconds` (monitor.linger_s), so that a scrape after the
  // last step sees its values; returns at once for seconds <= 0.
  void linger(double seconds) const;

 private:
  MetricsOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  double allreduce_seen_ = 0;  // allreduce_wait_seconds_total already counted

  // Cached series (Family::Add is slow); owned by registry_.
  prometheus::Gauge* loss_ = nullptr;
  prometheus::Gauge* loss_by_quartile_[4] = {};
  prometheus::Gauge* step_ = nullptr;
  prometheus::Counter* steps_total_ = nullptr;
  prometheus::Counter* images_total_ = nullptr;
  prometheus::Counter* skipped_steps_total_ = nullptr;
  prometheus::Gauge* images_per_second_ = nullptr;
  prometheus::Histogram* step_duration_ = nullptr;
  prometheus::Counter* data_wait_total_ = nullptr;
  prometheus::Counter* allreduce_wait_total_ = nullptr;
  prometheus::Gauge* grad_norm_ = nullptr;
  prometheus::Gauge* learning_rate_ = nullptr;
  prometheus::Gauge* loss_scale_ = nullptr;
  prometheus::Gauge* gpu_allocated_ = nullptr;  // null unless CUDA memory can be read
  prometheus::Gauge* gpu_peak_ = nullptr;
  // Checkpoint and eval series appear with their first value (an FID of 0
  // before any evaluation would read as a perfect score).
  prometheus::Family<prometheus::Gauge>* checkpoint_duration_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* checkpoint_step_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* eval_family_[4] = {};  // fid, IS, KID, step
  prometheus::Gauge* checkpoint_duration_ = nullptr;
  prometheus::Gauge* checkpoint_step_ = nullptr;
  prometheus::Gauge* eval_[4] = {};
};

}  // namespace scorch
