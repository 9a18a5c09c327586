// Training and sampling throughput of the DDPM++ and NCSN++ CIFAR-10 configs
// (score_sde's vp/cifar10_ddpmpp_continuous and ve/cifar10_ncsnpp_continuous):
// per precision (fp32, bf16, fp16 with dynamic loss scaling) the training
// images/s, mean step time and, on a GPU, peak allocated memory of the whole
// step (forward, backward, clip, Adam, EMA) on random data; then sampling
// samples/s with the PC sampler (the config's predictor/corrector, 1000
// steps) and EDM's Heun sampler (18 steps, 35 NFE). The GPU defaults are the
// issue's (128 images per GPU); without a GPU the models shrink (model.nf=32,
// batch 8, 3 steps, 25 PC steps) so the table is a smoke run, not a figure.
// --configs times other configs instead; a patch-based one (model.patch_size)
// trains on one random crop per image and samples whole images, e.g.
//   bench_train --configs configs/fashion_mnist/adm.yaml,configs/fashion_mnist/patch16.yaml
//   bench_train [--batch B] [--steps S] [--pc-steps N] [--precisions fp32,bf16,fp16]
//               [--configs a.yaml,b.yaml] [--threads T] [key=value ...]
// --threads sets LibTorch's intra-op threads (0, the default: LibTorch's own
// choice); every table's first line prints the count it ran with.
// --checkpointing prints instead, for model.checkpointing none, attention and
// blocks, the activation memory (heap bytes the autograd graph holds after
// forward), the resident memory a step adds at its peak (VmHWM) and the
// forward+backward time, for DDPM++ at 256 px and ADM's LSUN-256 config (or
// --configs); the three settings' steps interleave.
//   bench_train --checkpointing [--batch B] [--steps S] [--configs ...] [--threads T] [key=value ...]
// --sharding prints instead, for dist.shard_state none, optimizer and
// optimizer_ema at 1, 2 and 4 ranks, rank 0's optimizer and EMA state (the
// bytes of its tensors, exact; the largest shard is rank 0's), the resident
// memory and heap that state adds, and the time of one clip + Adam + EMA
// update with its parameter all-gather, for the same two models. The ranks
// are simulated in one process (a loopback communicator whose all-gather
// copies rank 0's part W times), so the time has the update's and the
// gather's memory traffic but no network.
//   bench_train --sharding [--steps S] [--configs ...] [--threads T] [key=value ...]
// --gradients prints instead, for the CIFAR-10 DDPM++ and NCSN++ configs (or
// --configs), the gradient memory of a data-parallel step: the parameters'
// bytes, GradSync's buckets, and the heap that forward + backward leave
// allocated besides them (a second gradient set would show here), measured
// after the optimizer's zero_grad as the trainer runs it; the last column is
// the gradient bytes at the end of backward over the parameter bytes.
//   bench_train --gradients [--batch B] [--configs ...] [key=value ...]
#include <malloc.h>
#include <torch/version.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>


#include "core/batch_random.h"  // defines: BatchRandom
#include "core/compat.h"        // defines: compat::gpu_memory, compat::reset_gpu_peak
#include "core/error.h"         // defines: detail::concat
#include "core/config.h"        // defines: Config, load_config
#include "dist/communicator.h"   // defines: Communicator, Work
#include "dist/context.h"        // defines: configure_device_math
#include "dist/grad_sync.h"      // defines: GradSync
#include "dist/param_shards.h"   // defines: ParamShards
#include "losses/loss.h"        // defines: make_loss
#include "nn/model_factory.h"   // defines: make_score_net
#include "nn/patch.h"           // defines: PatchOriginsScope, random_patches
#include "nn/score_model.h"     // defines: make_score_fn
#include "nn/score_net.h"       // defines: count_trainable_parameters
#include "sampling/sampler.h"   // defines: sample_from_config, sample_shape
#include "sde/sde.h"            // defines: make_sde
#include "train/ema.h"          // defines: Ema
#include "train/optimizer.h"    // defines: Optimizer
#include "train/precision.h"    // defines: AutocastGuard, LossScaler, autocast_dtype

namespace {

using namespace scorch;
using Clock = std::chrono::steady_clock;

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

void reset_peak(const torch::Device& d) { compat::reset_gpu_peak(d); }

// Peak allocated bytes since reset_peak, or -1 without a CUDA build and device.
double peak_mib(const torch::Device& d) {
  double allocated = 0, peak = 0;
  return compat::gpu_memory(d, &allocated, &peak) ? peak / 1048576.0 : -1;
}

struct TrainRow {
  double images_per_s = 0, step_ms = 0, peak = -1;
};

TrainRow time_training(const Config& c, const torch::Device& device, int64_t batch, int64_t steps) {
  configure_device_math(c, device);  // the trainer's math modes (TF32, cuDNN)
  torch::manual_seed(0);
  auto sde = make_sde(c);
  auto net = make_score_net(c);
  net->to(device);
  net->train();
  auto loss = make_loss(c, sde);
  Optimizer optimizer(net->named_parameters(), c.optim);
  Ema ema(*net, c.model);
  LossScaler scaler(c.precision, c.precision.dtype == PrecisionDtype::kFp16);
  const auto autocast = autocast_dtype(c.precision, device);
  auto shape = sample_shape(c);
  shape.insert(shape.begin(), batch);
  auto x = torch::rand(shape, torch::TensorOptions().device(device)) * 2 - 1;
  auto step = [&](int64_t s) {
    optimizer.zero_grad();
    BatchRandom noise(c.seed, s, batch, 0, batch);
    torch::Tensor origins;
    if (c.model.patch_size > 0) {  // the trainer's crop, part of the step's cost
      BatchRandom crop(c.seed + 1, s, batch, 0, batch);
      auto p = random_patches(x, c.model.patch_size, crop);
      origins = p.origins;
      x = p.x;
    }
    LossOutput out;
    {
      PatchOriginsScope patches(*net, origins);
      AutocastGuard guard(device, autocast);
      out = (*loss)(*net, x, {}, &noise);
    }
    (out.loss.to(torch::kFloat) * scaler.scale()).backward();
    scaler.unscale(optimizer.params());
    const double norm = optimizer.clip_gradients();
    scaler.update(std::isfinite(norm));
    optimizer.apply(s);
    ema.update(*net, batch, s * batch);
    if (origins.defined()) x = torch::rand(shape, x.options()) * 2 - 1;
  };
  for (int64_t s = 0; s < 2; ++s) step(s);  // warm-up: allocator, kernels
  sync(device);
  reset_peak(device);
  const auto t0 = Clock::now();
  for (int64_t s = 2; s < 2 + steps; ++s) step(s);
  sync(device);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  return {batch * steps / secs, 1000 * secs / steps, peak_mib(device)};
}

double time_sampling(const Config& c, const torch::Device& device, int64_t batch, int64_t* nfe) {
  configure_device_math(c, device);  // the trainer's math modes (TF32, cuDNN)
  torch::manual_seed(0);
  auto sde = make_sde(c);
  auto net = make_score_net(c);
  net->to(device);
  net->eval();
  torch::NoGradGuard no_grad;
  auto shape = sample_shape(c);
  shape.insert(shape.begin(), batch);
  const auto score = make_score_fn(net, sde, c.training.continuous);
  sync(device);
  const auto t0 = Clock::now();
  *nfe = sample_from_config(c, *sde, score, shape, torch::TensorOptions().device(device)).nfe;
  sync(device);
  return batch / std::chrono::duration<double>(Clock::now() - t0).count();
}

// Heap bytes in use (glibc: small blocks plus mmap'd ones; LibTorch's CPU
// allocator takes its memory from malloc).
double heap_mib() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<double>(m.uordblks + m.hblkhd) / 1048576.0;
}

// A field of /proc/self/status in MiB (VmRSS, VmHWM); -1 if absent (not Linux).
double status_mib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  return -1;
}

// Hands freed heap back to the system, then restarts VmHWM at the current
// resident size (writing 5 to /proc/self/clear_refs); returns that size.
double reset_peak_rss() {
  malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5";
  return status_mib("VmRSS");
}

// One model.checkpointing setting of a model: training forward (the config's
// loss, autocast as precision.dtype says) and backward, one step at a time.
// Per step: the heap bytes the graph holds after forward, the resident
// memory the step adds at its peak (activations, gradients, workspace), and
// the forward+backward time.
class CheckpointingRun {
 public:
  CheckpointingRun(const Config& c, const torch::Device& device, int64_t batch)
      : c_(c), device_(device), batch_(batch) {
    configure_device_math(c, device);
    torch::manual_seed(0);
    net_ = make_score_net(c);
    net_->to(device);
    net_->train();
    loss_ = make_loss(c, make_sde(c));
    auto shape = sample_shape(c);
    shape.insert(shape.begin(), batch);
    x_ = torch::rand(shape, torch::TensorOptions().device(device)) * 2 - 1;
  }

  // Step `s`; steps after the first (warm-up) count in the means.
  void step(int64_t s) {
    BatchRandom noise(c_.seed, s, batch_, 0, batch_);
    sync(device_);
    const double rss = reset_peak_rss();
    const double before = heap_mib();
    const auto t0 = Clock::now();
    LossOutput out;
    {
      AutocastGuard guard(device_, autocast_dtype(c_.precision, device_));
      out = (*loss_)(*net_, x_, {}, &noise);
    }
    sync(device_);
    graph_mib_ = heap_mib() - before;
    out.loss.to(torch::kFloat).backward();
    sync(device_);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    for (auto& p : net_->parameters()) p.mutable_grad().reset();
    out = {};
    if (s == 0) return;
    seconds_ += secs;
    peak_mib_ = std::max(peak_mib_, status_mib("VmHWM") - rss);
    ++steps_;
  }

  double graph_mib() const { return graph_mib_; }
  double peak_mib() const { return peak_mib_; }
  double step_ms() const { return 1000 * seconds_ / static_cast<double>(steps_); }

 private:
  Config c_;
  torch::Device device_;
  int64_t batch_;
  ScoreNet net_;
  std::shared_ptr<Loss> loss_;
  torch::Tensor x_;
  double graph_mib_ = 0, peak_mib_ = 0, seconds_ = 0;
  int64_t steps_ = 0;
};

// The settings' steps interleave (none, attention, blocks, none, ...), so a
// change in the machine's load falls on all of them alike.
void checkpointing_table(const std::vector<std::pair<std::string, std::string>>& models,
                         const std::vector<std::string>& base, const torch::Device& device,
                         int64_t batch, int64_t steps) {
  std::printf("%-16s %-10s %12s %8s %14s %8s %12s %8s\n", "model", "ckpt", "graph MiB", "vs none",
              "step peak MiB", "vs none", "fwd+bwd ms", "vs none");
  const std::vector<Checkpointing> modes = {Checkpointing::kNone, Checkpointing::kAttention,
                                            Checkpointing::kBlocks};
  for (const auto& [name, path] : models) {
    std::vector<std::unique_ptr<CheckpointingRun>> runs;
    for (auto mode : modes) {
      auto o = base;
      o.push_back(std::string("model.checkpointing=") + choice_name(mode));
      runs.push_back(std::make_unique<CheckpointingRun>(load_config(path, o), device, batch));
    }
    for (int64_t s = 0; s <= steps; ++s)
      for (auto& run : runs) run->step(s);
    const auto& none = *runs.front();
    for (size_t i = 0; i < modes.size(); ++i) {
      const auto& r = *runs[i];
      std::printf("%-16s %-10s %12.0f %7.0f%% %14.0f %7.0f%% %12.0f %7.0f%%\n", name.c_str(),
                  choice_name(modes[i]), r.graph_mib(), 100 * r.graph_mib() / none.graph_mib(),
                  r.peak_mib(), 100 * r.peak_mib() / none.peak_mib(), r.step_ms(),
                  100 * r.step_ms() / none.step_ms());
    }
  }
}

// Rank 0 of `world` ranks that all hold what it holds: every collective is
// local (an all-gather returns `world` copies of this rank's tensor), so the
// sharded code runs as on rank 0 of a real job, without the network.
class LoopbackCommunicator : public Communicator {
 public:
  explicit LoopbackCommunicator(int world) : world_(world) {}
  int rank() const override { return 0; }
  int size() const override { return world_; }
  const char* name() const override { return "loopback"; }
  void all_reduce_sum(torch::Tensor& t) override { t.mul_(world_); }
  std::unique_ptr<Work> all_reduce_sum_async(torch::Tensor& t) override {
    all_reduce_sum(t);
    struct Done : Work {
      void wait() override {}
    };
    return std::make_unique<Done>();
  }
  void broadcast(torch::Tensor&, int) override {}
  torch::Tensor all_gather(const torch::Tensor& t) override {
    return torch::cat(std::vector<torch::Tensor>(static_cast<size_t>(world_), t));
  }
  void barrier() override {}

 private:
  int world_;
};

// One dist.shard_state setting at one world size, seen from rank 0.
struct ShardRow {
  double state_mib = 0;     // optimizer + EMA tensors this rank holds (exact)
  double resident_mib = 0;  // resident memory they add (VmRSS)
  double heap_mib = 0;      // heap they add (malloc statistics)
  double peak_mib = 0;      // resident peak of the updates over the state-free baseline
  double update_ms = 0;     // clip + Adam + EMA + all-gather, mean over the timed steps
};

// The model's parameters with gradients (as GradSync leaves them), then the
// optimizer and EMA of `mode` at `world` ranks, `steps` + 1 updates (the
// first one allocates the moments and is not timed).
ShardRow shard_row(const Config& c, int world, ShardState mode, int64_t steps) {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  auto net = make_score_net(c);
  for (auto& p : net->parameters())
    if (p.requires_grad()) p.mutable_grad() = torch::randn_like(p).mul_(1e-3);
  const double rss0 = reset_peak_rss(), heap0 = heap_mib();
  ShardRow row;
  {
    LoopbackCommunicator comm(world);
    Optimizer opt(net->named_parameters(), c.optim);
    std::shared_ptr<const ParamShards> shards;
    if (mode != ShardState::kNone && world > 1) {
      shards = std::make_shared<ParamShards>(opt.params(), 0, world,
                                             static_cast<int64_t>(c.dist.bucket_mb * (1 << 20)));
      opt.shard(shards, &comm);
    }
    auto ema = shards && mode == ShardState::kOptimizerEma
                   ? std::make_unique<Ema>(*net, c.model, shards, &comm)
                   : std::make_unique<Ema>(*net, c.model);
    double seconds = 0;
    for (int64_t s = 0; s <= steps; ++s) {
      const auto t0 = Clock::now();
      opt.clip_gradients_tensor();
      opt.apply(s);
      ema->update(*net, c.training.batch_size, s * c.training.batch_size);
      if (s > 0) seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    }
    row.state_mib = static_cast<double>(opt.state_bytes() + ema->state_bytes()) / (1 << 20);
    row.resident_mib = status_mib("VmRSS") - rss0;
    row.heap_mib = heap_mib() - heap0;
    row.peak_mib = status_mib("VmHWM") - rss0;
    row.update_ms = 1000 * seconds / static_cast<double>(std::max<int64_t>(steps, 1));
  }
  return row;
}

void sharding_table(const std::vector<std::pair<std::string, std::string>>& models,
                    const std::vector<std::string>& base, int64_t steps) {
  std::printf("%-16s %10s %5s %-14s %10s %9s %12s %9s %9s %10s\n", "model", "params", "ranks",
              "shard_state", "state MiB", "vs none/W", "resident MiB", "heap MiB", "peak MiB",
              "update ms");
  for (const auto& [name, path] : models) {
    const Config c = load_config(path, base);
    const auto params = count_trainable_parameters(*make_score_net(c));
    double none_mib = 0;
    for (int world : {1, 2, 4}) {
      for (auto mode : {ShardState::kNone, ShardState::kOptimizer, ShardState::kOptimizerEma}) {
        const auto row = shard_row(c, world, mode, steps);
        if (world == 1 && mode == ShardState::kNone) none_mib = row.state_mib;
        std::printf("%-16s %10lld %5d %-14s %10.1f %8.1f%% %12.0f %9.0f %9.0f %10.0f\n",
                    name.c_str(), static_cast<long long>(params), world, choice_name(mode),
                    row.state_mib, 100 * row.state_mib / (none_mib / world), row.resident_mib,
                    row.heap_mib, row.peak_mib, row.update_ms);
        std::fflush(stdout);
      }
    }
  }
}

// One row per model: the gradient memory of a data-parallel step (see the
// file's comment). The second step is measured: the first warms the allocator.
void gradients_table(const std::vector<std::pair<std::string, std::string>>& models,
                     const std::vector<std::string>& overrides, const torch::Device& device,
                     int64_t batch) {
  std::printf("%-16s %12s %12s %16s %14s\n", "model", "params MiB", "buckets MiB",
              "other held MiB", "grad / params");
  for (const auto& [name, path] : models) {
    const Config c = load_config(path, overrides);
    torch::manual_seed(0);
    auto net = make_score_net(c);
    net->to(device);
    net->train();
    auto loss = make_loss(c, make_sde(c));
    auto comm = make_local_communicator();
    GradSync grad_sync(net->named_parameters(), *comm, GradSyncOptions{c.dist.bucket_mb});
    int64_t param_bytes = 0;
    for (const auto& p : net->parameters())
      if (p.requires_grad()) param_bytes += p.numel() * static_cast<int64_t>(p.element_size());
    auto shape = sample_shape(c);
    shape.insert(shape.begin(), batch);
    const auto x = torch::rand(shape, torch::TensorOptions().device(device)) * 2 - 1;
    double held = 0;
    for (int64_t s = 0; s < 2; ++s) {
      for (auto& p : net->parameters()) p.mutable_grad().reset();  // Optimizer::zero_grad
      BatchRandom noise(c.seed, s, batch, 0, batch);
      sync(device);
      malloc_trim(0);
      const double before = heap_mib();
      {
        LossOutput out = (*loss)(*net, x, {}, &noise);
        out.loss.to(torch::kFloat).backward();
      }
      sync(device);
      held = heap_mib() - before;
      grad_sync.finish();
    }
    const double mib = 1048576.0;
    std::printf("%-16s %12.1f %12.1f %16.1f %14.2f\n", name.c_str(), param_bytes / mib,
                grad_sync.bucket_bytes() / mib, held,
                (grad_sync.bucket_bytes() + held * mib) / static_cast<double>(param_bytes));
  }
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const bool gpu = torch::cuda::is_available();
  const torch::Device device(gpu ? torch::kCUDA : torch::kCPU);
  int64_t batch = gpu ? 128 : 8, steps = gpu ? 50 : 3, pc_steps = gpu ? 1000 : 25;
  int64_t sample_batch = gpu ? 128 : 8;
  std::string precisions = "fp32,bf16,fp16";
  std::vector<std::string> extra;
  std::string configs;
  CLI::App app{"Training and sampling throughput of the DDPM++ and NCSN++ CIFAR-10 configs"};
  app.add_option("--batch", batch, "training images per step")->capture_default_str();
  app.add_option("--steps", steps, "timed steps per row")->capture_default_str();
  app.add_option("--pc-steps", pc_steps, "PC sampler steps")->capture_default_str();
  app.add_option("--sample-batch", sample_batch, "samples per sampler call")->capture_default_str();
  app.add_option("--precisions", precisions, "comma-separated precision.dtype values")
      ->capture_default_str();
  app.add_option("--configs", configs,
                 "comma-separated config files to time instead of the CIFAR-10 DDPM++ and NCSN++");
  app.add_option("overrides", extra, "config overrides for every model");
  bool checkpointing = false;
  app.add_flag("--checkpointing", checkpointing,
               "activation memory and step time per model.checkpointing (DDPM++ 256 px, ADM "
               "LSUN-256) instead");
  bool sharding = false;
  app.add_flag("--sharding", sharding,
               "optimizer and EMA state per rank and update time per dist.shard_state at 1, 2 and "
               "4 ranks (DDPM++ 256 px, ADM LSUN-256) instead");
  bool gradients = false;
  app.add_flag("--gradients", gradients,
               "gradient memory of a data-parallel step (GradSync's buckets and what else "
               "backward leaves) instead");
  int threads = 0;
  app.add_option("--threads", threads, "LibTorch intra-op threads (0: LibTorch's default)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) torch::set_num_threads(threads);
  if (checkpointing || sharding) {
    const std::string src = SCORCH_SOURCE_DIR;
    std::vector<std::pair<std::string, std::string>> models = {
        {"DDPM++ 256", src + "/configs/vp/cifar10_ddpmpp_continuous.yaml"},
        {"ADM LSUN-256", src + "/configs/vp/lsun_bedroom256_adm.yaml"}};
    if (!configs.empty()) {
      models.clear();
      for (const auto& path : split(configs)) models.emplace_back(path, path);
    }
    // DDPM++ at 256 px: score_sde's 256 px level layout (celebahq_256 configs).
    std::vector<std::string> base = {"data.image_size=256", "model.ch_mult=[1,1,2,2,2,2,2]",
                                     "model.num_res_blocks=2", "model.attn_resolutions=[16]"};
    if (!configs.empty()) base.clear();
    base.insert(base.end(), extra.begin(), extra.end());
    std::printf("bench_train --%s: %s, LibTorch %s, %d threads, batch %lld, %lld timed "
                "steps; overrides:", sharding ? "sharding" : "checkpointing", device.str().c_str(), TORCH_VERSION,
                torch::get_num_threads(), static_cast<long long>(batch),
                static_cast<long long>(steps));
    for (const auto& o : extra) std::printf(" %s", o.c_str());
    std::printf("\n\n");
    if (sharding) {
      sharding_table({models.front()}, base, steps);
      if (models.size() > 1)
        sharding_table({models.begin() + 1, models.end()}, extra, steps);
      return 0;
    }
    // The DDPM++ layout applies to the first model only.
    checkpointing_table({models.front()}, base, device, batch, steps);
    if (models.size() > 1) {
      std::vector<std::pair<std::string, std::string>> rest(models.begin() + 1, models.end());
      checkpointing_table(rest, extra, device, batch, steps);
    }
    return 0;
  }

  std::vector<std::string> base;
  if (gradients) {
    std::vector<std::pair<std::string, std::string>> models = {
        {"DDPM++ (VP)", std::string(SCORCH_SOURCE_DIR) + "/configs/vp/cifar10_ddpmpp_continuous.yaml"},
        {"NCSN++ (VE)", std::string(SCORCH_SOURCE_DIR) + "/configs/ve/cifar10_ncsnpp_continuous.yaml"}};
    if (!configs.empty()) {
      models.clear();
      for (const auto& path : split(configs)) models.emplace_back(path, path);
    }
    std::printf("bench_train --gradients: %s, LibTorch %s, batch %lld; overrides:", device.str().c_str(),
                TORCH_VERSION, static_cast<long long>(batch));
    for (const auto& o : extra) std::printf(" %s", o.c_str());
    std::printf("\n\n");
    gradients_table(models, extra, device, batch);
    return 0;
  }
  if (!gpu) base.push_back("model.nf=32");
  base.insert(base.end(), extra.begin(), extra.end());
  const std::string src = SCORCH_SOURCE_DIR;
  std::vector<std::pair<std::string, std::string>> models = {
      {"DDPM++ (VP)", src + "/configs/vp/cifar10_ddpmpp_continuous.yaml"},
      {"NCSN++ (VE)", src + "/configs/ve/cifar10_ncsnpp_continuous.yaml"}};
  if (!configs.empty()) {
    models.clear();
    for (const auto& path : split(configs)) {
      const auto slash = path.find_last_of('/');
      models.emplace_back(path.substr(slash == std::string::npos ? 0 : slash + 1), path);
    }
  }

  std::string load = "unknown";
  if (std::ifstream in("/proc/loadavg"); in) std::getline(in, load);
  std::printf("bench_train: %s, LibTorch %s, %d threads, training batch %lld, %lld timed steps%s; "
              "load average %s\n\n",
              device.str().c_str(), TORCH_VERSION, torch::get_num_threads(),
              static_cast<long long>(batch), static_cast<long long>(steps),
              gpu ? "" : " (no GPU: model.nf=32 smoke run)", load.c_str());
  std::printf("%-14s %-6s %12s %12s %14s %10s\n", "model", "dtype", "images/s", "step ms",
              "peak MiB", "params");
  for (const auto& [name, path] : models) {
    for (const auto& p : split(precisions)) {
      auto o = base;
      o.push_back("precision.dtype=" + p);
      const Config c = load_config(path, o);
      const auto row = time_training(c, device, batch, steps);
      const auto params = count_trainable_parameters(*make_score_net(c));
      std::printf("%-14s %-6s %12.1f %12.1f %14s %10lld\n", name.c_str(), p.c_str(),
                  row.images_per_s, row.step_ms,
                  row.peak < 0 ? "n/a" : std::to_string(static_cast<long long>(row.peak)).c_str(),
                  static_cast<long long>(params));
    }
  }
  std::printf("\n%-14s %-34s %12s %8s\n", "model", "sampler", "samples/s", "NFE");
  for (const auto& [name, path] : models) {
    for (const bool edm : {false, true}) {
      auto o = base;
      if (edm) o.insert(o.end(), {"sampling.method=edm", "sampling.num_steps=18"});
      else o.push_back("sampling.num_steps=" + std::to_string(pc_steps));
      if (!edm) o.push_back("model.num_scales=" + std::to_string(pc_steps));
      const Config c = load_config(path, o);
      int64_t nfe = 0;
      const double rate = time_sampling(c, device, sample_batch, &nfe);
      const std::string label =
          edm ? "EDM Heun, 18 steps"
              : scorch::detail::concat("PC ", c.sampling.predictor, " + ", c.sampling.corrector, ", ",
                               pc_steps, " steps");
      std::printf("%-14s %-34s %12.3f %8lld\n", name.c_str(), label.c_str(), rate,
                  static_cast<long long>(nfe));
    }
  }
  return 0;
}
