// Every multi-tensor call of a training step stays on CUDA's fast route.
// CUDA's _foreach_* kernels (and _fused_adam_, _amp_foreach_non_finite_
// check_and_unscale_) launch one kernel for many tensors only when every
// tensor of every list, and every scalar tensor, has the first list's dtype
// and device, each tensor is dense and non-overlapping, and the tensors at one
// index of the lists have the same sizes and strides; otherwise they fall back
// to one kernel per tensor, silently. The CPU build takes other overloads, so
// it cannot show the fallback; this test records the step's multi-tensor calls
// and their arguments with LibTorch's RecordFunction on the CPU and checks
// those conditions, in one list per call as on CUDA (train/chunks.h), over
// whole runs: the score_sde EMA, EDM's half-life EMA (its ramp-up's first
// steps too) and the power-function EMAs, fp16's unscale, clipping, Adam and
// AdamW, on the toy MLP and a small DDPM++ in channels-last.
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/compat.h"
#include "core/config.h"
#include "testing/temp_dir.h"
#include "train/chunks.h"
#include "train/trainer.h"

namespace scorch {
namespace {

struct Recorded {
  std::map<std::string, int64_t> calls;  // per operator
  std::vector<std::string> problems;     // at most a few, with the operator
};
thread_local Recorded* recorded = nullptr;

bool multi_tensor(const std::string& name) {
  return name.rfind("aten::_foreach_", 0) == 0 || name.rfind("aten::_fused_adam", 0) == 0 ||
         name.rfind("aten::_amp_foreach", 0) == 0;
}

std::string describe(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.scalar_type() << " " << t.device() << " " << t.sizes() << " strides " << t.strides();
  return out.str();
}

// The conditions of CUDA's fast route (ATen's can_use_fast_route and
// check_fast_path_restrictions) on one call's tensor lists and tensors.
std::string route_problem(const at::RecordFunction& fn) {
  std::vector<std::vector<torch::Tensor>> lists;
  std::vector<torch::Tensor> scalars;
  for (const auto& input : fn.inputs()) {
    if (input.isTensorList()) lists.push_back(input.toTensorVector());
    if (input.isTensor() && input.toTensor().defined()) scalars.push_back(input.toTensor());
  }
  if (lists.empty() || lists.front().empty()) return "";
  const torch::Tensor& first = lists.front().front();
  const auto mismatch = [&](const torch::Tensor& t) {
    return t.scalar_type() != first.scalar_type() || t.device() != first.device();
  };
  for (const auto& t : scalars)
    if (mismatch(t)) return "scalar tensor " + describe(t) + " against list of " + describe(first);
  for (size_t l = 0; l < lists.size(); ++l) {
    // LibTorch 1.13 (CPU only) has no tensor-scalar overload: compat.h passes
    // the scalar as a list of one 0-dim tensor repeated, which 2.x never does.
    const bool repeated_scalar = !compat::kTorch2 && l > 0 && lists[l].front().dim() == 0 &&
                                 lists.front().front().dim() != 0;
    if (lists[l].size() != lists.front().size())
      return "lists of " + std::to_string(lists.front().size()) + " and " +
             std::to_string(lists[l].size()) + " tensors";
    for (size_t i = 0; i < lists[l].size(); ++i) {
      const auto& t = lists[l][i];
      if (mismatch(t)) return "tensor " + describe(t) + " in a list of " + describe(first);
      if (!t.is_non_overlapping_and_dense()) return "non-dense tensor " + describe(t);
      if (repeated_scalar) continue;
      const auto& lead = lists.front()[i];
      if (t.sizes() != lead.sizes() || t.strides() != lead.strides())
        return "tensor " + describe(t) + " beside " + describe(lead) + " at index " +
               std::to_string(i);
    }
  }
  return "";
}

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  if (recorded == nullptr || !multi_tensor(name)) return nullptr;
  ++recorded->calls[name];
  const std::string problem = route_problem(fn);
  if (!problem.empty() && recorded->problems.size() < 5) recorded->problems.push_back(name + ": " + problem);
  return nullptr;
}

// A whole run of `steps` steps of `config` (the toy default when empty) with
// `overrides`, its multi-tensor calls recorded in one chunk, as on CUDA.
Recorded record_run(const std::string& config, std::vector<std::string> overrides, int64_t steps) {
  testing::TempDir dir("foreach_route");
  const auto n = std::to_string(steps);
  overrides.insert(overrides.end(),
                   {"training.n_iters=" + n, "training.log_freq=" + n,
                    "training.snapshot_freq=" + n, "training.snapshot_freq_for_preemption=" + n,
                    "training.snapshot_sampling=false", "dist.device=cpu"});
  Config c = config.empty()
                 ? load_config(std::string(SCORCH_SOURCE_DIR) + "/configs/toy/eight_gaussians_vp.yaml",
                               overrides)
                 : parse_config(config, "test", overrides);
  Recorded out;
  ChunkElementsScope as_on_cuda(0);
  recorded = &out;
  auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(on_enter)
                                               .needsInputs(true)
                                               .scopes({at::RecordScope::FUNCTION}));
  Trainer(c, dir.str()).run();
  at::removeCallback(handle);
  recorded = nullptr;
  return out;
}

void expect_fast_route(const Recorded& r, const std::vector<std::string>& expected_ops) {
  for (const auto& problem : r.problems) ADD_FAILURE() << problem;
  for (const auto& op : expected_ops)
    EXPECT_GT(r.calls.count(op) ? r.calls.at(op) : 0, 0) << op << " was never called";
}

const std::string kDdpmpp =
    "{model: {name: ncsnpp, nf: 16, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [4], "
    "dropout: 0.0, channels_last: true}, data: {dataset: synthetic_images, image_size: 8, "
    "num_channels: 3}, training: {sde: vpsde, continuous: true, batch_size: 4}}";

TEST(ForeachRoute, ScoreSdeEmaClippingAndFp16UnscaleStayOnTheFastRoute) {
  const Recorded r = record_run("", {"precision.dtype=fp16", "optim.grad_clip=1e-3",
                                     "training.batch_size=64"},
                                6);
  expect_fast_route(r, {"aten::_foreach_sub", "aten::_foreach_sub_", "aten::_foreach_mul_",
                        "aten::_foreach_norm"});
  if (compat::kTorch2) EXPECT_GT(r.calls.count("aten::_amp_foreach_non_finite_check_and_unscale_"), 0u);
}

TEST(ForeachRoute, EdmAndPowerFunctionEmasStayOnTheFastRoute) {
  // A ramp-up ratio that keeps beta below 1/2 for the first steps and above
  // it later: both of EDM's forms run.
  const Recorded r = record_run("", {"model.ema_halflife_kimg=0.5", "model.ema_rampup_ratio=0.05",
                                     "model.phema_std=[0.05, 0.1]", "optim.optimizer=AdamW",
                                     "optim.weight_decay=0.01", "training.batch_size=64"},
                                30);
  expect_fast_route(r, {"aten::_foreach_sub", "aten::_foreach_sub_", "aten::_foreach_mul_",
                        "aten::_foreach_add_"});
}

TEST(ForeachRoute, ChannelsLastDdpmppStaysOnTheFastRoute) {
  const Recorded r = record_run(kDdpmpp, {"precision.dtype=fp16", "model.ema_halflife_kimg=0.5"}, 3);
  expect_fast_route(r, {"aten::_foreach_sub", "aten::_foreach_mul_", "aten::_foreach_norm"});
}

TEST(ForeachRoute, TheCheckCatchesAScalarOfAnotherDtype) {
  // The check itself: a float64 scalar tensor against float32 lists (what the
  // EMA and the unscale passed before) is reported.
  Recorded out;
  recorded = &out;
  auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(on_enter)
                                               .needsInputs(true)
                                               .scopes({at::RecordScope::FUNCTION}));
  std::vector<torch::Tensor> list = {torch::ones({3}), torch::ones({2, 2})};
  compat::foreach_mul_(list, torch::full({}, 0.5, torch::kDouble));
  std::vector<torch::Tensor> strided = {torch::ones({4, 4}).t(), torch::ones({2})};
  torch::_foreach_add_(strided, std::vector<torch::Tensor>{torch::ones({4, 4}), torch::ones({2})});
  at::removeCallback(handle);
  recorded = nullptr;
  ASSERT_EQ(out.problems.size(), 2u);
  EXPECT_NE(out.problems[0].find("Double"), std::string::npos) << out.problems[0];
  EXPECT_NE(out.problems[1].find("strides"), std::string::npos) << out.problems[1];
}

}  // namespace
}  // namespace scorch
