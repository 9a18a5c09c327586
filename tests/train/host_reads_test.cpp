// The training step reads nothing on the host between settles (src/train/
// run.h): every value the host needs (losses, norms, the skip flag, the loss
// scale) is read in one transfer at a log step, checkpoint, snapshot or
// evaluation. On a GPU a host read (`.item()`) waits for every queued kernel;
// on the CPU the same call is visible to LibTorch's RecordFunction as
// aten::_local_scalar_dense, which this test counts on the training thread:
// a run of 24 steps must make exactly as many as a run of 6 (the settles,
// checkpoint and set-up do not depend on the number of steps), for fp32,
// for fp16 with loss scaling and for an overflowing run whose every step is
// skipped on the device.
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "core/config.h"
#include "testing/temp_dir.h"
#include "train/trainer.h"

namespace scorch {
namespace {

std::atomic<int64_t> host_reads{0};

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
  if (std::string(fn.name()) == "aten::_local_scalar_dense") ++host_reads;
  return nullptr;
}

struct Counted {
  int64_t reads = 0;
  TrainResult result;
};

// Host reads on this thread over a whole run of `steps` steps, one log line
// and one checkpoint at the end.
Counted count_run(int64_t steps, std::vector<std::string> overrides) {
  testing::TempDir dir("host_reads");
  const auto n = std::to_string(steps);
  overrides.insert(overrides.end(),
                   {"training.n_iters=" + n, "training.log_freq=" + n,
                    "training.snapshot_freq=" + n, "training.snapshot_freq_for_preemption=" + n,
                    "training.snapshot_sampling=false", "training.batch_size=64",
                    "dist.device=cpu"});
  Config c = load_config(std::string(SCORCH_SOURCE_DIR) + "/configs/toy/eight_gaussians_vp.yaml",
                         overrides);
  host_reads = 0;
  auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(on_enter).scopes({at::RecordScope::FUNCTION}));
  Counted out;
  out.result = Trainer(c, dir.str()).run();
  at::removeCallback(handle);
  out.reads = host_reads;
  return out;
}

void expect_reads_independent_of_steps(const std::vector<std::string>& overrides) {
  const Counted few = count_run(6, overrides), many = count_run(24, overrides);
  EXPECT_GT(few.reads, 0) << "the counter saw no host read at all (checkpoints read the EMA count)";
  EXPECT_EQ(many.reads, few.reads) << "host reads grow with the number of steps";
  EXPECT_EQ(many.result.step, 24);
}

TEST(HostReads, Fp32StepsReadNothingBetweenSettles) { expect_reads_independent_of_steps({}); }

TEST(HostReads, Fp16LossScalingReadsNothingBetweenSettles) {
  expect_reads_independent_of_steps({"precision.dtype=fp16"});
}

TEST(HostReads, SkippedStepsAreDecidedOnTheDevice) {
  // A huge initial scale overflows every step: each is skipped and backs off,
  // without a host read; the settle finds them all.
  const std::vector<std::string> overrides = {"precision.dtype=fp16",
                                              "precision.initial_scale=1e300",
                                              "training.nonfinite_patience=1000"};
  expect_reads_independent_of_steps(overrides);
  EXPECT_GT(count_run(6, overrides).result.skipped_steps, 0);
}

}  // namespace
}  // namespace scorch
