// The state of one training run and the phases Trainer::run goes through
// (internal to src/train/): set-up and resume (trainer.cpp), one optimizer
// step (train_step.cpp), and the after-step work of snapshots and in-training
// evaluation (snapshots.cpp).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "data/source.h"
#include "dist/communicator.h"
#include "dist/context.h"
#include "dist/device_timer.h"
#include "dist/grad_sync.h"
#include "dist/param_shards.h"
#include "eval/features.h"
#include "eval/reference_stats.h"
#include "losses/loss.h"
#include "losses/timestep_sampler.h"
#include "monitor/metrics.h"
#include "nn/score_net.h"
#include "sde/sde.h"
#include "train/ema.h"
#include "train/optimizer.h"
#include "train/precision.h"
#include "train/preemption.h"

namespace scorch {

// Everything one run holds; built by set-up, used by every phase.
struct Run {
  Config config;
  std::filesystem::path workdir;
  DistContext ctx;
  std::unique_ptr<Communicator> comm;
  // For host values (preemption flags) when `comm` serves the device only
  // (nccl: MPI beside it); else null and comm serves both.
  std::unique_ptr<Communicator> cpu_comm;
  std::shared_ptr<Sde> sde;
  ScoreNet net;
  std::unique_ptr<Loss> loss;
  std::shared_ptr<TimestepSampler> timestep_sampler;  // training.timestep_sampler != uniform
  // dist.shard_state on more than one rank: the split of the trainable
  // parameters that the optimizer (and with optimizer_ema the EMA) keeps
  // state for; null otherwise.
  std::shared_ptr<const ParamShards> shards;
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<Ema> ema;
  std::unique_ptr<LossScaler> scaler;
  std::unique_ptr<GradSync> sync;  // more than one rank
  std::unique_ptr<DataSource> data;
  std::optional<torch::ScalarType> autocast;
  int64_t micro_batch = 0;  // rows per micro-batch on this rank
  int64_t step = 0;
  int64_t images_seen = 0;
  std::string last_checkpoint;
  int64_t last_checkpoint_step = -1;
  std::unique_ptr<Metrics> metrics;  // monitor.enabled: this rank's Prometheus endpoint
  // eval.freq > 0: the extractor and reference statistics, loaded once.
  std::unique_ptr<FeatureExtractor> extractor;
  std::optional<ReferenceStats> reference;
  // Trainable parameters by name (for naming non-finite gradients).
  std::vector<std::pair<std::string, torch::Tensor>> named_params;

  int64_t share() const { return config.training.batch_size / ctx.world_size; }
  Communicator& host_comm() const { return cpu_comm ? *cpu_comm : *comm; }
};

// What one optimizer step left for the host: its statistics on the device,
// read when the trainer settles its steps (at training.log_freq and before
// any checkpoint, snapshot, evaluation or parameter check), so that a step
// waits for no device work; and what the host knows at once.
struct StepRecord {
  int64_t step = 0;         // r.step during the step (before its increment)
  torch::Tensor row;        // float64 on the device (train_step.cpp's Row)
  bool preempt = false;     // some rank has a preemption request (agreed on the host)
  double data_wait = 0;     // seconds waiting for this rank's batch
  // From the batch request to the step's end: host seconds on the CPU; on
  // CUDA events on the current stream around the step's device work, read
  // when settled (host seconds would time only the enqueueing).
  DeviceTimer time;
  std::chrono::steady_clock::time_point start;
};

// A settled step, after every rank agreed on it.
struct StepOutcome {
  int64_t step = 0;         // r.step during the step (before its increment)
  QuartileStats quartiles;  // this step's loss sums over all ranks
  double grad_norm = 0;     // before clipping
  bool loss_finite = true;
  bool finite = true;       // loss and gradients: the step was applied
  double loss_scale = 1;    // after the step
  double data_wait = 0;
  double seconds = 0;
};

// One optimizer step at r.step (train_step.cpp): this rank's share of the
// global batch in training.grad_accum micro-batches, the gradient all-reduce,
// unscale and clip, one all-reduce of the loss statistics and non-finite
// flags on the device, one of the preemption flags on the host, then the
// optimizer, loss-scaler and EMA steps, which are no-ops on the device when
// the step is non-finite. Reads nothing from the device (except for
// training.timestep_sampler, whose history is on the host). Does not advance
// r.step.
StepRecord train_step(Run& r, const PreemptionWatch& preemption);

// `record` with its row read to the host (`row`: record.row on the CPU).
StepOutcome read_outcome(const StepRecord& record, const torch::Tensor& row);

// Saves a checkpoint of the state at r.step (rank 0 writes; once per step).
// With sharded state every rank calls it: the shards are gathered on rank 0.
void save(Run& r);

// training.phema_snapshot_kimg: after a step whose images crossed a multiple
// of it, rank 0 writes every power-function EMA profile to workdir/phema/
// (train/phema.h); a no-op otherwise and without model.phema_std.
void store_phema_snapshots(Run& r);

// EMA samples of the step (snapshots.cpp), drawn with the sampler
// sampling.method names, as `scorch sample` draws them; written as a PNG
// under samples/; 2-D data also gets its sliced-Wasserstein quality. Every
// rank calls it and draws its share of training.snapshot_num_samples; rank 0
// writes and returns the quality JSON (empty for images and on other ranks).
nlohmann::json snapshot_samples(Run& r);

// eval.freq: FID/IS/KID of eval.freq_num_samples EMA samples (snapshots.cpp).
// Every rank calls it; rank 0 gets the report and writes eval/.
nlohmann::json evaluate_during_training(Run& r);

// "00000123": the step as it appears in file and directory names.
std::string step_name(int64_t step);

}  // namespace scorch
