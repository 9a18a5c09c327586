// The update half of a training step (everything after backward: loss-scale
// unscaling, gradient clipping, Adam, EMA, zero-grad), per tensor as Scorch
// took it before (testing/per_tensor_step.h: LibTorch's torch::optim::Adam,
// clip_grad_norm_ with host reads, the EMA loop) and multi-tensor as it is now
// (train/optimizer.h, train/ema.h, train/precision.h), on the parameters of
// score_sde's DDPM++ CIFAR-10 network (vp/cifar10_ddpmpp_continuous). Prints
// per step: top-level ATen operator calls (LibTorch's RecordFunction: what a
// GPU launches as separate kernels, roughly; nested calls of a CPU fallback
// are not counted), all operator calls, host reads (.item()), counted over
// the update and its zero-grad, and the mean time of the update (unscale,
// clip, Adam, EMA) on this machine: the zero-grad and the making of the
// next gradients are outside the clock on both sides.
//   bench_step [--config FILE] [--steps N] [key=value ...]
#include <ATen/record_function.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/config.h"               // defines: Config, load_config
#include "nn/model_factory.h"          // defines: make_score_net
#include "testing/per_tensor_step.h"   // defines: PerTensorStep
#include "train/chunks.h"              // defines: ChunkElementsScope, chunk_elements
#include "train/ema.h"                 // defines: Ema
#include "train/optimizer.h"           // defines: Optimizer
#include "train/precision.h"           // defines: LossScaler

namespace {

using namespace scorch;
using Clock = std::chrono::steady_clock;

thread_local int depth = 0;
std::atomic<int64_t> top_level{0}, all_calls{0}, item_calls{0}, launches{0};

// The kernel launches CUDA's multi_tensor_apply (ATen's CUDA multi-tensor
// helper) makes for one multi-tensor call of `lists` tensor
// lists (outputs included) over tensors of these sizes: a launch whenever
// its tensors reach depth_to_max_tensors[depth - 1] or its blocks of 65,536
// elements reach 320, and one for the rest. An estimate: it assumes the
// call takes the fast route (tests/train/foreach_route_test.cpp checks that
// the step's calls do) and counts _foreach_norm's second (cleanup) kernel.
int64_t multi_tensor_launches(const std::vector<int64_t>& numels, int lists) {
  static const int64_t max_tensors[] = {110, 64, 48, 36, 30};
  const int64_t tensors_per_launch = max_tensors[std::min(std::max(lists, 1), 5) - 1];
  constexpr int64_t kChunk = 65536, kBlocks = 320;
  int64_t last = -1;  // the last tensor with elements
  for (size_t i = 0; i < numels.size(); ++i)
    if (numels[i] > 0) last = static_cast<int64_t>(i);
  int64_t out = 0, tensors = 0, blocks = 0;
  for (int64_t i = 0; i <= last; ++i) {
    if (numels[i] == 0) continue;
    ++tensors;
    const int64_t chunks = (numels[i] + kChunk - 1) / kChunk;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      ++blocks;
      const bool tensors_full = tensors == tensors_per_launch && chunk == chunks - 1;
      if (tensors_full || blocks == kBlocks || (i == last && chunk == chunks - 1)) {
        ++out;
        blocks = 0;
        tensors = chunk == chunks - 1 ? 0 : 1;  // an unfinished tensor goes on
      }
    }
  }
  return out;
}

// Top-level calls only: a multi-tensor call counts its launches as above,
// anything else one kernel.
int64_t cuda_launches(const at::RecordFunction& fn, const std::string& name) {
  const bool multi = name.rfind("aten::_foreach_", 0) == 0 || name.rfind("aten::_amp_foreach", 0) == 0 ||
                     name.rfind("aten::_fused_adam", 0) == 0;
  if (!multi) return 1;
  std::vector<int64_t> numels;
  int lists = 0;
  for (const auto& input : fn.inputs()) {
    if (!input.isTensorList()) continue;
    const auto list = input.toTensorVector();
    if (numels.empty())
      for (const auto& t : list) numels.push_back(t.numel());
    // LibTorch 1.13's stand-in for the tensor-scalar overload (a list of one
    // 0-dim tensor repeated) is a scalar on CUDA, not a list.
    if (!list.empty() && list.front().dim() == 0 && lists > 0) continue;
    ++lists;
  }
  const bool in_place = name.back() == '_';
  if (!in_place && name != "aten::_foreach_norm") ++lists;  // the output list
  return multi_tensor_launches(numels, lists) + (name == "aten::_foreach_norm" ? 1 : 0);
}

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  if (depth++ == 0) ++top_level, launches += cuda_launches(fn, name);
  ++all_calls;
  if (name == "aten::item" || name == "aten::_local_scalar_dense") ++item_calls;
  return nullptr;
}
void on_exit(const at::RecordFunction&, at::ObserverContext*) { --depth; }

struct Counts {
  double top = 0, all = 0, items = 0, launches = 0;
};

// Runs `update` once per step with fresh gradients, then `clear` (the
// zero-grad: in place per tensor, set to none multi-tensor). The counts are
// one step's update and clear; the clock times `update` alone, so both sides
// time the same work: `clear` and `fill` (which copies the next gradients
// into the zeroed ones, or clones them where they were set to none) run
// outside it on both. Returns the counts and the mean seconds.
template <typename Fill, typename Update, typename Clear>
std::pair<Counts, double> measure(int steps, Fill fill, Update update, Clear clear) {
  fill();
  update(0);  // state allocation and first-touch, outside the figures
  clear();
  fill();
  top_level = all_calls = item_calls = launches = 0;
  auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(on_enter, on_exit)
                                               .needsInputs(true)
                                               .scopes({at::RecordScope::FUNCTION}));
  update(1);
  clear();
  at::removeCallback(handle);
  Counts c{static_cast<double>(top_level), static_cast<double>(all_calls),
           static_cast<double>(item_calls / 2),  // item runs _local_scalar_dense inside
           static_cast<double>(launches)};
  double seconds = 0;
  for (int s = 2; s < 2 + steps; ++s) {
    fill();
    const auto t0 = Clock::now();
    update(s);
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    clear();
  }
  return {c, seconds / steps};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"operators and time of the update half of a training step"};
  std::string config_path = std::string(SCORCH_SOURCE_DIR) + "/configs/vp/cifar10_ddpmpp_continuous.yaml";
  int steps = 5;
  std::vector<std::string> overrides;
  app.add_option("--config", config_path, "config whose network to use");
  app.add_option("--steps", steps, "timed steps");
  app.add_option("overrides", overrides, "config overrides");
  CLI11_PARSE(app, argc, argv);
  torch::set_num_threads(1);  // a stable, single-core figure
  std::printf("update half of a training step (after backward), %s, 1 CPU thread\n",
              config_path.c_str());
  std::printf("%-8s %-6s %10s %12s %14s %10s %9s %12s\n", "network", "scale", "params", "top-level ops",
              "CUDA launches", 
              "all ops", "host reads", "ms per step");
  for (const double scale : {1.0, 65536.0}) {
    for (const int variant : {0, 1, 2}) {  // per tensor; multi-tensor in CPU chunks; as on CUDA
      const bool multi = variant > 0;
      Config c = load_config(config_path, overrides);
      torch::manual_seed(0);
      ScoreNet net = make_score_net(c);
      std::vector<torch::Tensor> params, grads;
      for (const auto& p : net->parameters())
        if (p.requires_grad()) params.push_back(p), grads.push_back(torch::randn_like(p) * 1e-3);
      auto fill = [&] {
        torch::NoGradGuard no_grad;
        for (size_t i = 0; i < params.size(); ++i) {
          if (params[i].grad().defined())
            params[i].mutable_grad().copy_(grads[i]);  // the per-tensor step zeroes in place
          else
            params[i].mutable_grad() = grads[i].clone();
        }
      };
      std::pair<Counts, double> r;
      if (multi) {
        Optimizer optimizer(net->named_parameters(), c.optim, /*fused=*/false);
        Ema ema(*net, c.model);
        PrecisionConfig pc;
        pc.initial_scale = scale;
        LossScaler scaler(pc, scale != 1.0);
        const int64_t chunk = variant == 2 ? 0 : chunk_elements(torch::kCPU);
        r = measure(
            steps, fill,
            [&](int64_t s) {
              ChunkElementsScope cut(chunk);
              scaler.unscale(optimizer.params());
              const double norm = optimizer.clip_gradients();
              scaler.update(std::isfinite(norm));
              optimizer.apply(s);
              // Past EDM's EMA ramp-up (a run's usual state): images from 12.8 M on.
              ema.update(*net, 128, (s + 100000) * 128);
            },
            [&] { optimizer.zero_grad(); });
      } else {
        testing::PerTensorStep step(net->named_parameters(), c.optim, c.model.ema_rate);
        r = measure(
            steps, fill,
            [&](int64_t s) {
              step.unscale(scale);
              step.clip();
              step.adam(s);
              step.ema();
            },
            [&] { step.zero_grad(); });
      }
      std::printf("%-8s %-6g %10zu %12.0f %14.0f %10.0f %9.0f %12.1f   %s\n", "DDPM++", scale,
                  params.size(), r.first.top, r.first.launches, r.first.all, r.first.items,
                  1000 * r.second,
                  variant == 0   ? "per tensor (before)"
                  : variant == 1 ? "multi-tensor, 4 MB chunks (now, CPU)"
                                 : "multi-tensor, one chunk (now, as on CUDA)");
    }
  }
  return 0;
}
