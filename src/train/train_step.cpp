// One optimizer step (see run.h): this rank's share of the global batch, split
// into training.grad_accum micro-batches; per micro-batch the loss under
// autocast with noise drawn per global sample, and backward of the loss times
// the loss scale; GradSync's hooks all-reduce gradient buckets during the
// last backward; then unscale, clip, one small all-reduce of the loss
// statistics and the non-finite count on the device, and the optimizer, loss
// scaler and EMA steps, which a non-finite gradient or loss turns into no-ops
// on the device (one flag, as GradScaler's found_inf). Nothing is read on the
// host: the step's record stays on the device until the trainer settles it
// (trainer.cpp). Preemption requests are agreed on the host, where they
// arise. In-network randomness (dropout) comes from generators seeded by
// (seed, rank, step), so a resumed run, on any number of ranks, continues
// where a run that never stopped would be.
#include <cmath>

#include "core/batch_random.h"
#include "core/compat.h"
#include "core/error.h"
#include "core/host_read.h"
#include "core/rng.h"
#include "nn/patch.h"
#include "train/run.h"

namespace scorch {
namespace {

constexpr uint64_t kLabelDropoutSeed = 0xD509;
constexpr uint64_t kPatchCropSeed = 0xC409;

// A step's record on the device: the statistics summed over ranks in one
// all-reduce (loss sums and counts by quartile of t, ranks with a non-finite
// gradient norm), then this rank's gradient norm, the skip flag and the loss
// scale after the step.
enum Row {
  kQuartileSum = 0,
  kQuartileCount = 4,
  kNonfiniteGrad = 8,
  kNumStats = 9,
  kGradNorm = kNumStats,
  kSkipped,
  kLossScale,
};

// This rank's rows of the step, on the device.
struct StepBatch {
  torch::Tensor x;              // [share, ...] data, or patches of it
  torch::Tensor labels;         // [share] int64, undefined without classes
  torch::Tensor patch_origins;  // [share, 2], undefined without patches
};

// Labels checked against data.num_classes, with label dropout for
// classifier-free guidance (index num_classes is the null class).
torch::Tensor step_labels(const Run& r, const Batch& batch, const torch::Tensor& x) {
  const auto& c = r.config;
  SCORCH_CHECK(batch.labels.defined(), "data.num_classes=", c.data.num_classes,
               " asks for class conditioning but data.dataset '", c.data.dataset,
               "' has no labels; set data.num_classes=0");
  // Checked on the loader's CPU tensor, before the copy: no device sync.
  const int64_t largest = static_cast<int64_t>(read_scalar(batch.labels.max()));
  SCORCH_CHECK(largest < c.data.num_classes, "data.num_classes=", c.data.num_classes,
               " but the data has label ", largest);
  auto labels = batch.labels.to(r.ctx.device, /*non_blocking=*/true);
  if (c.model.class_dropout > 0) {
    BatchRandom drop(mix64(c.seed ^ kLabelDropoutSeed), r.step, c.training.batch_size,
                     r.ctx.rank * r.share(), r.share());
    labels = torch::where(drop.uniform({r.share()}, x.options()) < c.model.class_dropout,
                          torch::full_like(labels, c.data.num_classes), labels);
  }
  return labels;
}

StepBatch next_batch(Run& r, StepRecord& out) {
  const auto& c = r.config;
  out.start = std::chrono::steady_clock::now();
  out.time = DeviceTimer(r.ctx.device);
  Batch batch = r.data->next(c.training.batch_size);
  out.data_wait =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - out.start).count();
  StepBatch b;
  b.x = batch.x.to(r.ctx.device, /*non_blocking=*/true);
  if (c.model.channels_last && b.x.dim() == 4) b.x = b.x.contiguous(torch::MemoryFormat::ChannelsLast);
  if (c.data.num_classes > 0) b.labels = step_labels(r, batch, b.x);
  if (c.model.patch_size > 0) {  // one random crop per image, placed per global sample
    BatchRandom crop(mix64(c.seed ^ kPatchCropSeed), r.step, c.training.batch_size,
                     r.ctx.rank * r.share(), r.share());
    Patches patches = random_patches(b.x, c.model.patch_size, crop);
    b.x = patches.x;
    b.patch_origins = patches.origins;
  }
  return b;
}

// Rows [m * micro, (m + 1) * micro) of a per-rank tensor (all of it without
// accumulation; undefined stays undefined).
torch::Tensor micro_rows(const torch::Tensor& t, int64_t m, int64_t micro, int64_t accum) {
  return !t.defined() || accum == 1 ? t : t.narrow(0, m * micro, micro);
}

// This rank's rows of the step, on the device: times and per-sample losses
// (the quartile statistics) and the discrete levels (the time-step sampler).
struct StepRows {
  std::vector<torch::Tensor> t, loss, level;
};

// Forward under autocast and backward of the scaled loss per micro-batch;
// the gradient all-reduce overlaps the last micro-batch's backward. Nothing
// is read on the host between forward and backward.
StepRows forward_backward(Run& r, const StepBatch& b) {
  const auto& c = r.config;
  const int64_t accum = c.training.grad_accum, micro = r.micro_batch;
  r.optimizer->zero_grad();
  const auto scaled = r.scaler->scaled(accum);  // float64 on the device when fp16
  StepRows rows;
  for (int64_t m = 0; m < accum; ++m) {
    BatchRandom noise(c.seed, r.step, c.training.batch_size, r.ctx.rank * r.share() + m * micro,
                      micro);
    if (r.sync) r.sync->set_enabled(m == accum - 1, /*add_accumulated=*/accum > 1);
    LossOutput out;
    {
      PatchOriginsScope patch_scope(*r.net, micro_rows(b.patch_origins, m, micro, accum));
      AutocastGuard autocast(r.ctx.device, r.autocast);
      out = (*r.loss)(*r.net, micro_rows(b.x, m, micro, accum),
                      micro_rows(b.labels, m, micro, accum), &noise);
    }
    rows.t.push_back(out.t.detach());
    rows.loss.push_back(out.per_sample.detach());
    if (r.timestep_sampler) rows.level.push_back(out.level);
    if (scaled)
      (out.loss.to(torch::kFloat) * *scaled).backward();
    else
      (out.loss.to(torch::kFloat) * (1.0 / static_cast<double>(accum))).backward();
  }
  return rows;
}

// This rank's loss sums and counts by quartile of t and whether its gradient
// norm is finite (and, with fp16's unscale, whether it found a non-finite
// gradient): [kNumStats] float64 on the device, summed over ranks by one
// all-reduce. `zeroed`: training.zero_nonfinite_grads set the gradients'
// NaNs and infinities to 0 (precision.h nonfinite_gradients).
torch::Tensor device_stats(const StepRows& rows, const torch::Tensor& grad_norm,
                           const torch::Tensor& found_inf, bool zeroed) {
  const auto t = torch::cat(rows.t).to(torch::kDouble), loss = torch::cat(rows.loss).to(torch::kDouble);
  const auto quartile = (t * 4.0).floor().clamp(0, 3).to(torch::kLong);
  auto stats = torch::zeros({kNumStats}, loss.options());
  stats.narrow(0, kQuartileSum, 4).index_add_(0, quartile, loss);
  stats.narrow(0, kQuartileCount, 4).index_add_(0, quartile, torch::ones_like(loss));
  stats.narrow(0, kNonfiniteGrad, 1)
      .copy_(nonfinite_gradients(grad_norm, found_inf, zeroed).to(torch::kDouble).reshape({1}));
  return stats;
}

// 1 (skip the step) when a gradient or the loss is non-finite on any rank,
// else 0: a float64 0-dim tensor beside the summed statistics.
torch::Tensor skip_flag(const torch::Tensor& stats) {
  const auto loss_sum = stats.narrow(0, kQuartileSum, 4).sum();
  return (stats[kNonfiniteGrad] > 0).logical_or(torch::isfinite(loss_sum).logical_not())
      .to(torch::kDouble);
}

// Every rank's view of preemption, agreed on the host (the requests arise
// there) through a CPU communicator: no device sync.
bool agree_on_preemption(Run& r, const PreemptionWatch& preemption) {
  if (r.ctx.world_size == 1) return preemption.requested();
  auto flag = torch::full({1}, preemption.requested() ? 1.0 : 0.0, torch::kDouble);
  r.host_comm().all_reduce_sum(flag);
  return read_scalar(flag) > 0;
}

// training.timestep_sampler: the sampler's history lives on the host, so this
// reads the step's levels and losses (and the skip flag) every step. Every
// rank's rows in rank order are the global batch in row order, so every rank
// (and any world size) applies the same update.
void update_timestep_sampler(Run& r, const StepRows& rows, const torch::Tensor& skipped) {
  const auto level = torch::cat(rows.level).to(torch::kDouble);
  const auto loss = torch::cat(rows.loss).to(torch::kDouble);
  const auto host = torch::cat({level, loss, skipped.reshape({1})}).cpu();
  const int64_t n = level.numel();
  if (read_scalar(host[2 * n]) != 0) return;  // a skipped step teaches nothing
  auto mine = torch::stack({host.narrow(0, 0, n), host.narrow(0, n, n)}, 1);  // [share, 2]
  const auto all = r.ctx.world_size > 1 ? r.comm->all_gather(mine.contiguous()) : mine;
  r.timestep_sampler->update(all.select(1, 0), all.select(1, 1));
}

}  // namespace

StepRecord train_step(Run& r, const PreemptionWatch& preemption) {
  const auto& c = r.config;
  seed_streams(c.seed, static_cast<uint64_t>(r.ctx.rank), r.step);
  StepRecord rec;
  rec.step = r.step;
  const StepBatch b = next_batch(r, rec);
  const StepRows rows = forward_backward(r, b);
  if (r.sync) r.sync->finish();
  torch::Tensor found_inf = r.scaler->unscale(r.optimizer->params());
  const bool zeroed = resolved_zero_nonfinite_grads(c);
  if (zeroed) {
    // EDM2's force_finite, after unscaling and before clipping. With fp16's
    // loss scale an overflow must still skip the step and back the scale
    // off: 2.x's unscale reports it in found_inf; 1.13's does not, so there
    // the zeroing reports what it found.
    const torch::Tensor found =
        zero_nonfinite_grads(r.optimizer->params(), r.scaler->enabled() && !compat::kTorch2);
    if (found.defined()) found_inf = found;
  }
  const torch::Tensor grad_norm = r.optimizer->clip_gradients_tensor();
  torch::Tensor stats = device_stats(rows, grad_norm, found_inf, zeroed);
  if (r.ctx.world_size > 1) r.comm->all_reduce_sum(stats);
  const torch::Tensor skipped = skip_flag(stats);
  rec.preempt = agree_on_preemption(r, preemption);

  r.scaler->update(skipped);
  if (r.timestep_sampler) update_timestep_sampler(r, rows, skipped);
  r.optimizer->apply(r.step, skipped);
  r.ema->update(*r.net, c.training.batch_size, r.images_seen, skipped);
  rec.row = torch::cat({stats, grad_norm.to(torch::kDouble).reshape({1}),
                        skipped.reshape({1}), r.scaler->scale_tensor().reshape({1})});
  rec.time.stop();
  return rec;
}

StepOutcome read_outcome(const StepRecord& record, const torch::Tensor& row) {
  const auto acc = row.accessor<double, 1>();
  StepOutcome out;
  double loss_sum = 0;
  for (int q = 0; q < 4; ++q) {
    out.quartiles.sum[q] = acc[kQuartileSum + q];
    out.quartiles.count[q] = static_cast<int64_t>(acc[kQuartileCount + q]);
    loss_sum += acc[kQuartileSum + q];
  }
  out.step = record.step;
  out.grad_norm = acc[kGradNorm];
  out.loss_finite = std::isfinite(loss_sum);
  out.finite = acc[kSkipped] == 0;
  out.loss_scale = acc[kLossScale];
  out.data_wait = record.data_wait;
  out.seconds = record.time.seconds();  // the row is on the host: the step's work is done
  return out;
}

}  // namespace scorch
