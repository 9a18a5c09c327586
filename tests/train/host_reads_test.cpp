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
//
// Nor does a step copy anything from the host to the device after the first
// one (HostToDeviceCopies): a constant table (an SDE's schedule, a network's
// frequencies) kept or built on the host and moved with `.to(device)` inside
// a loss or forward is a copy from pageable memory on CUDA, which waits for
// the host. The CPU build has no second device, so the test counts the call
// sites instead: every aten::to / _to_copy / copy_ made directly by Scorch
// code (not inside another op or backward) with an explicit device argument,
// minus non-blocking ones (the data batch's copy); a run of 5 steps must make
// as many as a run of 2, for each loss (SMLD, DDPM, DSM, EDM) and network
// (NCSN, ADM, DDPM++). Tables made once per device (core/device_cache.h) or
// built with the input's options make none. A move of a tensor that is
// already on the device costs nothing on CUDA but counts here too, so step
// code names only the dtype for those (`skipped.to(torch::kDouble)`).
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
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

// --- host-to-device copies ---------------------------------------------------

// Calls of the training thread that ask for a device move: counts by op,
// dtype and rank of the input (e.g. "aten::to.dtype_layout Double 1-d"), and
// within those by size. Runs are compared by the first (the settle's read of
// N step records is one call whatever N) and reported by the second. Only
// calls made directly by Scorch code count: depth 0 among the
// RecordFunctions open on this thread, so casts inside an op or an autograd
// backward (which name the tensor's own device) are left out. Another thread
// that inherits the callback (none should) is not counted.
using MoveCounts = std::map<std::string, std::map<std::string, int64_t>>;
thread_local int record_depth = 0;
std::thread::id counting_thread;
MoveCounts device_moves;

// Whether the op's schema names a device argument that the call sets
// (to.device, to.dtype_layout, _to_copy; copy_ never does) and
// non_blocking, where the schema has it, is false.
bool asks_for_device_move(const at::RecordFunction& fn) {
  const auto name = fn.operator_name();
  if (!name ||
      (name->name != "aten::to" && name->name != "aten::_to_copy" && name->name != "aten::copy_"))
    return false;
  const auto op = c10::Dispatcher::singleton().findSchema(*name);
  if (!op) return false;
  const auto& schema = op->schema();
  const auto inputs = fn.inputs();
  const auto device = schema.argumentIndexWithName("device");
  const auto non_blocking = schema.argumentIndexWithName("non_blocking");
  if (!device || *device >= inputs.size() || !inputs[*device].isDevice()) return false;
  return !(non_blocking && *non_blocking < inputs.size() && inputs[*non_blocking].isBool() &&
           inputs[*non_blocking].toBool());
}

std::unique_ptr<at::ObserverContext> on_enter_copy(const at::RecordFunction& fn) {
  if (record_depth++ == 0 && std::this_thread::get_id() == counting_thread &&
      asks_for_device_move(fn)) {
    std::ostringstream key, sizes;
    key << fn.name() << "." << fn.operator_name()->overload_name;
    const auto inputs = fn.inputs();
    if (!inputs.empty() && inputs[0].isTensor()) {
      const auto& t = inputs[0].toTensor();
      key << " " << t.scalar_type() << " " << t.dim() << "-d";
      sizes << t.sizes();
    }
    ++device_moves[key.str()][sizes.str()];
  }
  return nullptr;
}

void on_exit_copy(const at::RecordFunction&, at::ObserverContext*) { --record_depth; }

// Device-move calls on this thread over a run of `steps` steps of the image
// config `model` (overrides on the embedded defaults, synthetic 8x8 images),
// one log line and one checkpoint at the end.
MoveCounts count_device_moves(int64_t steps, const std::string& model) {
  testing::TempDir dir("host_copies");
  const auto n = std::to_string(steps);
  const std::string run = "training.n_iters=" + n + " training.log_freq=" + n +
                          " training.snapshot_freq=" + n +
                          " training.snapshot_freq_for_preemption=" + n +
                          " training.snapshot_sampling=false training.batch_size=4 "
                          "dist.device=cpu data.dataset=synthetic_images data.image_size=8 "
                          "data.num_channels=1 model.dropout=0.0 ";
  std::vector<std::string> overrides;
  std::istringstream words(run + model);
  for (std::string w; words >> w;) overrides.push_back(w);
  Config c = parse_config("{}", "host_copies", overrides);
  device_moves.clear();
  record_depth = 0;
  counting_thread = std::this_thread::get_id();
  auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(on_enter_copy, on_exit_copy)
          .needsInputs(true)
          .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
  const TrainResult result = Trainer(c, dir.str()).run();
  at::removeCallback(handle);
  EXPECT_EQ(result.step, steps);
  return device_moves;
}

// Every kind of call whose count grows from a run of 2 steps to a run of 5
// (a copy in every step after the first) fails the test.
void expect_no_device_moves_per_step(const std::string& model, const std::string& what) {
  const MoveCounts few = count_device_moves(2, model), many = count_device_moves(5, model);
  const auto total = [](const MoveCounts& counts, const std::string& call) {
    int64_t sum = 0;
    if (const auto it = counts.find(call); it != counts.end())
      for (const auto& entry : it->second) sum += entry.second;
    return sum;
  };
  std::string grown;
  for (const auto& [call, by_size] : many) {
    if (total(many, call) == total(few, call)) continue;
    for (const auto& [size, count] : by_size) {
      const auto it = few.find(call);
      const int64_t before = it == few.end() || !it->second.count(size) ? 0 : it->second.at(size);
      if (count != before)
        grown += "\n  " + call + " " + size + ": " + std::to_string(before) + " in 2 steps, " +
                 std::to_string(count) + " in 5";
    }
  }
  EXPECT_TRUE(grown.empty()) << what << " asks for a device move in every step:" << grown;
}

const std::string kNcsn =
    "model.name=ncsn model.nf=8 model.num_scales=10 model.sigma_min=0.01 model.sigma_max=1.0 "
    "model.normalization=InstanceNorm++ model.nonlinearity=elu";
const std::string kAdm =
    "model.name=adm model.nf=32 model.ch_mult=[1,2] model.num_res_blocks=1 "
    "model.attn_resolutions=[4] model.num_heads=2";
const std::string kDdpmpp =
    "model.name=ncsnpp model.nf=16 model.ch_mult=[1,2] model.num_res_blocks=1 "
    "model.attn_resolutions=[4]";

TEST(HostToDeviceCopies, SmldLossOnNcsnCopiesNothingAfterTheFirstStep) {
  expect_no_device_moves_per_step(
      kNcsn + " training.sde=vesde training.continuous=false training.loss=smld", "SMLD on NCSN");
}

TEST(HostToDeviceCopies, DdpmLossOnAdmAndDdpmppCopiesNothingAfterTheFirstStep) {
  const std::string ddpm = " training.sde=vpsde training.continuous=false training.loss=ddpm";
  expect_no_device_moves_per_step(kAdm + ddpm, "DDPM on ADM");
  expect_no_device_moves_per_step(kDdpmpp + ddpm, "DDPM on DDPM++");
}

TEST(HostToDeviceCopies, DsmLossOnAdmAndDdpmppCopiesNothingAfterTheFirstStep) {
  const std::string dsm = " training.sde=vpsde training.continuous=true training.loss=dsm";
  expect_no_device_moves_per_step(kAdm + dsm, "DSM on ADM");
  expect_no_device_moves_per_step(kDdpmpp + dsm, "DSM on DDPM++");
}

TEST(HostToDeviceCopies, EdmLossOnAdmAndDdpmppCopiesNothingAfterTheFirstStep) {
  const std::string edm = " model.precond=edm training.sde=vesde training.loss=edm";
  expect_no_device_moves_per_step(kAdm + edm, "EDM on ADM");
  expect_no_device_moves_per_step(kDdpmpp + edm, "EDM on DDPM++");
}

TEST(HostToDeviceCopies, Fp16LossScalingAndEdmEmasCopyNothingAfterTheFirstStep) {
  // The loss scaler's update and unscale, EDM's half-life and the
  // power-function EMAs run every step too.
  expect_no_device_moves_per_step(
      kDdpmpp + " model.precond=edm training.sde=vesde training.loss=edm precision.dtype=fp16 "
                "model.ema_halflife_kimg=0.5 model.phema_std=[0.05,0.1]",
      "fp16 EDM with EDM's and power-function EMAs on DDPM++");
}

}  // namespace
}  // namespace scorch
