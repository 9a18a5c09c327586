// The Prometheus exporter (see metrics.h): a registry of scorch_* families with
// constant labels rank and local_rank, served by prometheus-cpp's Exposer
// (CivetWeb). Series are added once and cached, since Family::Add looks up
// the label set under a lock.
#include "monitor/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "core/compat.h"
#include "core/error.h"

#ifndef SCORCH_VERSION
#define SCORCH_VERSION "unknown"
#endif

// CivetWeb, the HTTP server under prometheus::Exposer, starts its threads
// with an explicit stack of 100 KiB (Debian builds it with USE_STACK_SIZE =
// 102400). glibc carves every thread's static TLS out of an explicitly sized
// stack, and the libraries LibTorch loads (OpenBLAS, glog, ...) hold more
// than 100 KiB of it, so pthread_create fails with EINVAL and the Exposer
// throws "null context when constructing CivetServer" on any port. This
// definition in the executable (exported by CMake's
// --export-dynamic-symbol=pthread_attr_setstacksize on scorch_monitor)
// interposes glibc's for the shared libraries and raises requests below
// 1 MiB to 1 MiB; everything else passes through unchanged.
extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t size) {
  using Fn = int (*)(pthread_attr_t*, size_t);
  static const Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  constexpr size_t kMinStack = size_t{1} << 20;
  return next(attr, size < kMinStack ? kMinStack : size);
}

namespace scorch {
namespace {

using prometheus::Labels;

// Step time from a toy step on the CPU (~1 ms) to a large U-Net step (~1 min).
const prometheus::Histogram::BucketBoundaries kStepBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

bool binds_every_interface(const std::string& bind) {
  return bind.empty() || bind == "0.0.0.0" || bind == "::" || bind == "[::]";
}

// CivetWeb's listening-port syntax: "addr:port", "[v6addr]:port", or "port"
// for every interface.
std::string listening_spec(const std::string& bind, int64_t port) {
  if (bind.empty()) return std::to_string(port);
  if (bind.find(':') != std::string::npos && bind.front() != '[')
    return "[" + bind + "]:" + std::to_string(port);
  return bind + ":" + std::to_string(port);
}

prometheus::Gauge& gauge(prometheus::Registry& registry, const Labels& constant,
                         const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Labels(constant).Register(registry).Add(
      {});
}

prometheus::Family<prometheus::Gauge>& gauge_family(prometheus::Registry& registry,
                                                    const Labels& constant,
                                                    const std::string& name,
                                                    const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Labels(constant).Register(registry);
}

prometheus::Counter& counter(prometheus::Registry& registry, const Labels& constant,
                             const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Labels(constant).Register(registry).Add(
      {});
}

// LibTorch's CUDA caching allocator: bytes allocated now and at the peak.
// Only a CUDA build (SCORCH_CUDA) can ask; otherwise false.
bool read_gpu_memory(const torch::Device& device, double* allocated, double* peak) {
  return compat::gpu_memory(device, allocated, peak);
}

}  // namespace

Metrics::Metrics(const MetricsOptions& options)
    : options_(options), registry_(std::make_shared<prometheus::Registry>()) {
  const int64_t port = options.base_port == 0 ? 0 : options.base_port + options.local_rank;
  SCORCH_CHECK(port <= 65535, "monitor.port=", options.base_port, " + local rank ",
               options.local_rank, " = ", port,
               " is not a TCP port (at most 65535); lower monitor.port");
  const std::string spec = listening_spec(options.bind, port);
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(spec, /*num_threads=*/1);
  } catch (const std::exception& e) {  // CivetException: the port could not be bound
    fail(detail::concat(
        "cannot serve metrics on ", spec, " (rank ", options.rank, ": monitor.bind '",
        options.bind, "', monitor.port ", options.base_port, " + local rank ", options.local_rank,
        "): the port is in use or the address is not this machine's (", e.what(),
        "). Choose a monitor.port whose next ranks-per-node ports are free, or set "
        "monitor.enabled=false"));
  }
  const auto ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? static_cast<int>(port) : ports.front();

  auto& reg = *registry_;
  const Labels c = {{"rank", std::to_string(options.rank)},
                    {"local_rank", std::to_string(options.local_rank)}};
  loss_ = &gauge(reg, c, "scorch_train_loss",
                 "Mean training loss of the last step over all ranks (NaN or Inf if non-finite)");
  auto& by_quartile = gauge_family(
      reg, c, "scorch_train_loss_by_quartile",
      "Mean training loss of the last step by quartile of the diffusion time t (quartile q "
      "holds t in [(q-1)/4, q/4))");
  for (int q = 0; q < 4; ++q)
    loss_by_quartile_[q] = &by_quartile.Add({{"quartile", std::to_string(q + 1)}});
  step_ = &gauge(reg, c, "scorch_train_step", "Optimizer steps completed (resumed runs included)");
  steps_total_ = &counter(reg, c, "scorch_train_steps_total",
                          "Optimizer steps taken by this process (skipped ones included)");
  images_total_ = &counter(reg, c, "scorch_train_images_total",
                           "Training images this rank processed (sum over ranks = global)");
  skipped_steps_total_ =
      &counter(reg, c, "scorch_train_skipped_steps_total",
               "Steps skipped for a non-finite loss or gradients (fp16 overflow included)");
  images_per_second_ = &gauge(reg, c, "scorch_train_images_per_second",
                              "Images per second of this rank over the last logging interval");
  step_duration_ = &prometheus::BuildHistogram()
                        .Name("scorch_train_step_duration_seconds")
                        .Help("Wall time of one training step on this rank")
                        .Labels(c)
                        .Register(reg)
                        .Add({}, kStepBuckets);
  data_wait_total_ = &counter(reg, c, "scorch_train_data_wait_seconds_total",
                              "Seconds spent waiting for training batches");
  allreduce_wait_total_ =
      &counter(reg, c, "scorch_train_allreduce_wait_seconds_total",
               "Seconds spent waiting for the gradient all-reduce after backward");
  grad_norm_ = &gauge(reg, c, "scorch_train_grad_norm",
                      "Global gradient norm of the last step, before clipping");
  learning_rate_ = &gauge(reg, c, "scorch_train_learning_rate", "Learning rate of the last step");
  loss_scale_ = &gauge(reg, c, "scorch_train_loss_scale",
                       "Dynamic loss scale (fp16); 1 without loss scaling");
  auto& gpu_allocated = gauge_family(reg, c, "scorch_gpu_memory_allocated_bytes",
                                     "GPU memory held by tensors (CUDA caching allocator)");
  auto& gpu_peak = gauge_family(reg, c, "scorch_gpu_memory_peak_bytes",
                                "Peak GPU memory held by tensors since the start");
  double unused_allocated = 0, unused_peak = 0;
  if (read_gpu_memory(options.device, &unused_allocated, &unused_peak)) {
    gpu_allocated_ = &gpu_allocated.Add({});
    gpu_peak_ = &gpu_peak.Add({});
  }
  checkpoint_duration_family_ = &gauge_family(
      reg, c, "scorch_checkpoint_duration_seconds", "Seconds the last checkpoint took to write");
  checkpoint_step_family_ =
      &gauge_family(reg, c, "scorch_checkpoint_last_step", "Step of the last checkpoint written");
  eval_family_[0] = &gauge_family(reg, c, "scorch_eval_fid", "FID of the last evaluation");
  eval_family_[1] = &gauge_family(reg, c, "scorch_eval_inception_score",
                                  "Inception Score of the last evaluation");
  eval_family_[2] = &gauge_family(reg, c, "scorch_eval_kid", "KID of the last evaluation");
  eval_family_[3] =
      &gauge_family(reg, c, "scorch_eval_step", "Training step of the last evaluation");
  prometheus::BuildGauge()
      .Name("scorch_build_info")
      .Help("Scorch build; the value is always 1")
      .Labels(c)
      .Register(reg)
      .Add({{"version", SCORCH_VERSION}})
      .Set(1);

  exposer_->RegisterCollectable(registry_);
}

Metrics::~Metrics() = default;

int Metrics::port() const { return port_; }

std::string Metrics::target() const {
  std::string host = options_.bind;
  if (binds_every_interface(host)) {
    char name[256] = {};
    host = gethostname(name, sizeof name - 1) == 0 && name[0] ? name : "localhost";
  } else if (host.find(':') != std::string::npos && host.front() != '[') {
    host = "[" + host + "]";
  }
  return host + ":" + std::to_string(port_);
}

void Metrics::record_step(const StepMetrics& s) {
  loss_->Set(s.loss);
  for (int q = 0; q < 4; ++q)
    if (!std::isnan(s.loss_by_quartile[q])) loss_by_quartile_[q]->Set(s.loss_by_quartile[q]);
  step_->Set(static_cast<double>(s.step));
  steps_total_->Increment();
  images_total_->Increment(static_cast<double>(s.images));
  if (s.skipped) skipped_steps_total_->Increment();
  step_duration_->Observe(s.seconds);
  data_wait_total_->Increment(std::max(0.0, s.data_wait_seconds));
  if (s.allreduce_wait_seconds_total > allreduce_seen_) {
    allreduce_wait_total_->Increment(s.allreduce_wait_seconds_total - allreduce_seen_);
    allreduce_seen_ = s.allreduce_wait_seconds_total;
  }
  if (!s.skipped) grad_norm_->Set(s.grad_norm);
  learning_rate_->Set(s.learning_rate);
  loss_scale_->Set(s.loss_scale);
  double allocated = 0, peak = 0;
  if (gpu_allocated_ && read_gpu_memory(options_.device, &allocated, &peak)) {
    gpu_allocated_->Set(allocated);
    gpu_peak_->Set(peak);
  }
}

void Metrics::record_throughput(double images_per_second) {
  images_per_second_->Set(images_per_second);
}

void Metrics::record_checkpoint(int64_t step, double seconds) {
  if (!checkpoint_duration_) {
    checkpoint_duration_ = &checkpoint_duration_family_->Add({});
    checkpoint_step_ = &checkpoint_step_family_->Add({});
  }
  checkpoint_duration_->Set(seconds);
  checkpoint_step_->Set(static_cast<double>(step));
}

void Metrics::record_eval(int64_t step, const nlohmann::json& report) {
  static const char* const kKeys[3] = {"fid", "inception_score", "kid"};
  bool any = false;
  for (int i = 0; i < 3; ++i) {
    const auto it = report.find(kKeys[i]);
    if (it == report.end() || !it->is_number()) continue;
    if (!eval_[i]) eval_[i] = &eval_family_[i]->Add({});
    eval_[i]->Set(it->get<double>());
    any = true;
  }
  if (!any) return;
  if (!eval_[3]) eval_[3] = &eval_family_[3]->Add({});
  eval_[3]->Set(static_cast<double>(step));
}

void Metrics::linger(double seconds) const {
  if (seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

}  // namespace scorch
