// Gradient synchronisation benchmark, for two CPU ranks under
// `mpirun -np 2 bench_dist` (`ninja -C build bench` runs it so). One MLP and
// one batch per rank; three ways to take a training step, each timed over
// --steps steps after 3 warm-up steps (median on rank 0):
//  compute only  forward + backward on every rank, no communication;
//  no overlap    backward, then all gradients all-reduced in buckets
//                (GradSync disabled during backward, then reduce_accumulated);
//  overlap       GradSync hooks start each bucket's all-reduce as soon as its
//                gradients are in, while backward goes on; then finish().
// "fwd + bwd" is forward and backward (with overlap: including the all-reduce
// work done inside the hooks' progress calls); "comm" is the time spent in
// reduce_accumulated / finish: the whole all-reduce without overlap, what is
// left to wait for with it.
//   mpirun -np 2 bench_dist [--bucket-mb MB] [--steps N] [--batch B] [--width W] [--threads T]
#include <torch/version.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"        // defines: Config
#include "dist/communicator.h"  // defines: Communicator, make_communicator
#include "dist/context.h"       // defines: DistContext, make_single_process_context
#include "dist/grad_sync.h"     // defines: GradSync
#include "dist/mpi.h"           // defines: launched_by_mpi, make_mpi_context

namespace {

using namespace scorch;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Options {
  double bucket_mb = 25;
  int steps = 20;
  int64_t batch = 64;
  int64_t width = 2048;  // hidden width: 512 -> W -> W -> W -> 512, ~10.5 M parameters
  int threads = 1;       // LibTorch intra-op threads per rank (2 ranks on 2 cores)
};

enum class Mode { kComputeOnly, kNoOverlap, kOverlap };

struct Timing {
  double step_ms = 0, backward_ms = 0, comm_ms = 0;  // medians
};

Timing time_mode(Mode mode, torch::nn::Sequential& net, GradSync& sync, Communicator& comm,
                 const torch::Tensor& x, const torch::Tensor& y, int steps) {
  constexpr int kWarmup = 3;
  std::vector<double> step_ms, backward_ms, comm_ms;
  sync.set_enabled(mode == Mode::kOverlap);
  for (int step = 0; step < kWarmup + steps; ++step) {
    comm.barrier();  // ranks start each step together; not timed
    const auto t0 = Clock::now();
    for (auto& p : net->parameters()) p.mutable_grad().reset();  // zero_grad(set_to_none)
    (net->forward(x) - y).pow(2).mean().backward();
    const auto t1 = Clock::now();
    if (mode == Mode::kNoOverlap) sync.reduce_accumulated();
    if (mode == Mode::kOverlap) sync.finish();
    if (step < kWarmup) continue;
    step_ms.push_back(ms_since(t0));
    backward_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    comm_ms.push_back(ms_since(t1));
  }
  sync.set_enabled(true);
  return {median(step_ms), median(backward_ms), mode == Mode::kComputeOnly ? 0.0 : median(comm_ms)};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Gradient all-reduce with and without overlap, two CPU ranks under mpirun"};
  Options o;
  app.add_option("--bucket-mb", o.bucket_mb, "GradSync bucket size in MiB")
      ->check(CLI::PositiveNumber);
  app.add_option("--steps", o.steps, "timed steps per mode")->check(CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "batch per rank")->check(CLI::PositiveNumber);
  app.add_option("--width", o.width, "MLP hidden width")->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "LibTorch intra-op threads per rank")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  torch::set_num_threads(o.threads);

  Config config;
  config.dist.device = DeviceName::kCpu;
  const DistContext ctx =
      launched_by_mpi() ? make_mpi_context(config) : make_single_process_context(config);
  auto comm = make_communicator(ctx, config.dist.backend, config.dist.timeout_s);

  torch::manual_seed(0);  // the same model on every rank; data differ
  const int64_t io = 512, w = o.width;
  torch::nn::Sequential net(torch::nn::Linear(io, w), torch::nn::ReLU(), torch::nn::Linear(w, w),
                            torch::nn::ReLU(), torch::nn::Linear(w, w), torch::nn::ReLU(),
                            torch::nn::Linear(w, io));
  torch::manual_seed(1 + ctx.rank);
  const auto x = torch::randn({o.batch, io});
  const auto y = torch::randn({o.batch, io});
  GradSync sync(net->named_parameters(), *comm, {o.bucket_mb});
  int64_t params = 0;
  for (const auto& p : net->parameters()) params += p.numel();

  const Timing compute = time_mode(Mode::kComputeOnly, net, sync, *comm, x, y, o.steps);
  const Timing serial = time_mode(Mode::kNoOverlap, net, sync, *comm, x, y, o.steps);
  const Timing overlap = time_mode(Mode::kOverlap, net, sync, *comm, x, y, o.steps);
  if (!ctx.is_main()) return 0;

  std::string load = "unknown";
  if (std::ifstream in("/proc/loadavg"); in) std::getline(in, load);
  std::printf(
      "bench_dist: %d ranks (%s), %u hardware threads, LibTorch %s with %d intra-op "
      "threads per rank; load average at start: %s\n"
      "MLP 512-%lld-%lld-%lld-512: %.2f M parameters (%.1f MiB of float32 gradients), "
      "batch %lld per rank, %lld buckets of <= %g MiB, median of %d steps\n\n",
      comm->size(), comm->name(), std::thread::hardware_concurrency(), TORCH_VERSION,
      torch::get_num_threads(), load.c_str(), static_cast<long long>(w), static_cast<long long>(w),
      static_cast<long long>(w), params / 1e6, params * 4.0 / (1024 * 1024),
      static_cast<long long>(o.batch), static_cast<long long>(sync.num_buckets()), o.bucket_mb,
      o.steps);
  std::printf(
      "| mode | step ms | fwd + bwd ms | comm ms | saving vs no overlap |\n"
      "|---|---|---|---|---|\n");
  std::printf("| compute only | %.1f | %.1f | - | - |\n", compute.step_ms, compute.backward_ms);
  std::printf("| no overlap (bwd, then all-reduce) | %.1f | %.1f | %.1f | - |\n", serial.step_ms,
              serial.backward_ms, serial.comm_ms);
  const double saving = serial.step_ms - overlap.step_ms;
  std::printf("| overlap (hooks, then finish) | %.1f | %.1f | %.1f | %.1f ms (%.0f%%) |\n",
              overlap.step_ms, overlap.backward_ms, overlap.comm_ms, saving,
              100 * saving / serial.step_ms);
  return 0;
}
