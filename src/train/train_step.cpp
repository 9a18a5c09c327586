// One optimizer step (see run.h): this rank's share of the global batch, split
// into training.grad_accum micro-batches; per micro-batch the loss under
// autocast with noise drawn per global sample, and backward of the loss times
// the loss scale; GradSync's hooks all-reduce gradient buckets during the
// last backward; then unscale, clip, the step's one host read (the loss rows
// and the gradient norm, in one transfer after backward), one small
// all-reduce of loss statistics and overflow/preemption flags, and the
// optimizer and EMA step unless a gradient or the loss was non-finite. In-network randomness (dropout) comes
// from generators seeded by (seed, rank, step), so a resumed run, on any
// number of ranks, continues where a run that never stopped would be.
#include <cmath>

#include "core/batch_random.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/patch.h"
#include "train/run.h"

namespace scorch {
namespace {

constexpr uint64_t kLabelDropoutSeed = 0xD509;
constexpr uint64_t kPatchCropSeed = 0xC409;

// Per-step statistics summed over ranks in one all-reduce: loss sums and
// counts by quartile of t, non-finite gradients, preemption requests.
enum Stat { kQuartileSum = 0, kQuartileCount = 4, kNonfiniteGrad = 8, kPreempt = 9, kNumStats };

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
  const int64_t largest = batch.labels.max().item<int64_t>();
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

StepBatch next_batch(Run& r, StepOutcome& out) {
  const auto& c = r.config;
  out.start = std::chrono::steady_clock::now();
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

// This rank's rows of the step, left on the device until the step's one
// host read (read_rows): times and per-sample losses (the quartile
// statistics) and the discrete levels (the time-step sampler).
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
    (out.loss.to(torch::kFloat) * (r.scaler->scale() / static_cast<double>(accum))).backward();
  }
  return rows;
}

// The step's one host read: this rank's rows and the gradient norm, in one
// float64 transfer (float32 and int64 levels below 2^53 convert exactly),
// into the quartile statistics and, for the time-step sampler, CPU levels
// and losses.
struct HostRows {
  QuartileStats quartiles;
  torch::Tensor level, loss;  // [share] float64 on the CPU; undefined without a sampler
  double grad_norm = 0;
};
HostRows read_rows(const StepRows& rows, const torch::Tensor& grad_norm) {
  const auto t = torch::cat(rows.t).to(torch::kDouble), loss = torch::cat(rows.loss).to(torch::kDouble);
  std::vector<torch::Tensor> parts{t, loss, grad_norm.to(t.device(), torch::kDouble).reshape({1})};
  if (!rows.level.empty()) parts.push_back(torch::cat(rows.level).to(torch::kDouble));
  const auto host = torch::cat(parts).cpu();
  const int64_t n = t.numel();
  HostRows out;
  out.quartiles.add(host.narrow(0, 0, n), host.narrow(0, n, n));
  out.grad_norm = host[2 * n].item<double>();
  if (!rows.level.empty()) {
    out.level = host.narrow(0, 2 * n + 1, n);
    out.loss = host.narrow(0, n, n);
  }
  return out;
}

// One all-reduce: the loss statistics, and every rank's view of overflow and
// preemption, so that all ranks decide alike.
void agree(Run& r, StepOutcome& out, const PreemptionWatch& preemption) {
  auto stats = torch::zeros({kNumStats}, torch::kDouble);
  auto acc = stats.accessor<double, 1>();
  for (int q = 0; q < 4; ++q) {
    acc[kQuartileSum + q] = out.quartiles.sum[q];
    acc[kQuartileCount + q] = static_cast<double>(out.quartiles.count[q]);
  }
  acc[kNonfiniteGrad] = std::isfinite(out.grad_norm) ? 0 : 1;
  acc[kPreempt] = preemption.requested() ? 1 : 0;
  if (r.ctx.world_size > 1) r.comm->all_reduce_sum(stats);
  double loss_sum = 0;
  for (int q = 0; q < 4; ++q) {
    out.quartiles.sum[q] = acc[kQuartileSum + q];
    out.quartiles.count[q] = static_cast<int64_t>(acc[kQuartileCount + q]);
    loss_sum += acc[kQuartileSum + q];
  }
  out.loss_finite = std::isfinite(loss_sum);
  out.finite = out.loss_finite && acc[kNonfiniteGrad] == 0;
  out.preempt = acc[kPreempt] > 0;
}

}  // namespace

StepOutcome train_step(Run& r, const PreemptionWatch& preemption) {
  const auto& c = r.config;
  seed_streams(c.seed, static_cast<uint64_t>(r.ctx.rank), r.step);
  StepOutcome out;
  const StepBatch b = next_batch(r, out);
  const StepRows rows = forward_backward(r, b);
  if (r.sync) r.sync->finish();
  r.scaler->unscale(r.optimizer->params());
  const HostRows host = read_rows(rows, r.optimizer->clip_gradients_tensor());
  out.quartiles = host.quartiles;
  out.grad_norm = host.grad_norm;
  agree(r, out, preemption);

  r.scaler->update(out.finite);
  if (r.timestep_sampler && out.finite) {
    // Every rank's rows in rank order are the global batch in row order, so
    // every rank (and any world size) applies the same update.
    auto mine = torch::stack({host.level, host.loss}, 1);  // [share, 2]
    const auto all = r.ctx.world_size > 1 ? r.comm->all_gather(mine.contiguous()) : mine;
    r.timestep_sampler->update(all.select(1, 0), all.select(1, 1));
  }
  if (out.finite) {
    r.optimizer->apply(r.step);
    r.ema->update(*r.net, c.training.batch_size, r.images_seen);
  }
  return out;
}

}  // namespace scorch
