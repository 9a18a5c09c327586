// The training loop (see trainer.h) as a sequence of named phases: set-up
// (context, communicator, model, loss, optimizer, EMA, data), resume from the
// newest checkpoint, then per step: train_step (train_step.cpp) and the
// after-step work (logging, metrics, parameter checks, checkpoints,
// preemption, snapshots and evaluation, snapshots.cpp). The data stream is
// positioned by a global cursor and every random stream by (seed, rank,
// step), so a resumed run, on any number of ranks, continues where a run that
// never stopped would be.
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "monitor/run_log.h"
#include "monitor/scrape_targets.h"
#include "nn/score_model.h"
#include "train/checkpoint.h"
#include "train/phema.h"
#include "train/run.h"

namespace scorch {
namespace fs = std::filesystem;

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08lld", static_cast<long long>(step));
  return buf;
}

namespace {

constexpr uint64_t kInitStream = 0x1417;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The ranks that take part in writing rank 0's files (checkpoints, power-
// function EMA snapshots): rank 0 writes them, and with dist.shard_state
// every rank holds part of the optimizer or EMA state, whose gather to rank 0
// is a collective that all of them join.
bool joins_save(const Run& r) { return r.ctx.is_main() || r.shards != nullptr; }

// Rank 0's checkpoint. Every rank of joins_save calls it: the gathers of
// sharded state are collectives; the other ranks' result is incomplete.
CheckpointData collect_state(const Run& r) {
  CheckpointData c;
  c.ema = r.ema->gather_state_dict(*r.comm);
  c.optimizer = r.optimizer->gather_state_dict(*r.comm);
  if (!r.ctx.is_main()) return c;
  c.model = module_state(*r.net);
  c.ema_num_updates = r.ema->num_updates();
  c.step = r.step;
  c.images_seen = r.images_seen;
  c.data_cursor = r.data->cursor();
  c.config_yaml = to_yaml(r.config);
  c.extra["loss_scaler"] = r.scaler->state();
  c.extra["world_size"] = static_cast<int64_t>(r.ctx.world_size);
  if (r.timestep_sampler) c.extra["timestep_sampler"] = r.timestep_sampler->state();
  return c;
}

void restore_state(Run& r, const CheckpointData& c, const std::string& path) {
  load_module_state(*r.net, c.model, "checkpoint '" + path + "'");
  for (const auto& name : r.ema->load_state_dict(c.ema, c.ema_num_updates, r.net.get())) {
    // A power-function profile started late is no power function: its
    // snapshots would mislead `scorch phema`.
    SCORCH_CHECK(name.rfind("phema_", 0) != 0 || c.images_seen == 0, "checkpoint '", path,
                 "' has no power-function EMA '", name, "' (model.phema_std): a profile must run "
                 "from the start of training; drop it from model.phema_std, or train it in a new "
                 "workdir");
    log_warning("checkpoint '", path, "' has no EMA '", name,
                "'; it starts from the current weights");
  }
  r.optimizer->load_state_dict(c.optimizer);
  r.step = c.step;
  r.images_seen = c.images_seen;
  r.data->seek(c.data_cursor);
  if (const auto it = c.extra.find("loss_scaler"); it != c.extra.end())
    r.scaler->load_state(it->second, "checkpoint '" + path + "'");
  // A checkpoint without it (uniform before) starts the warm-up afresh.
  if (const auto it = c.extra.find("timestep_sampler"); it != c.extra.end() && r.timestep_sampler)
    r.timestep_sampler->load_state(it->second, "checkpoint '" + path + "'");
}

}  // namespace

void save(Run& r) {
  if (r.last_checkpoint_step == r.step) return;
  r.last_checkpoint_step = r.step;
  const auto dir = (r.workdir / "checkpoints").string();
  const auto path = checkpoint_path(dir, r.step);
  r.last_checkpoint = path;
  // Rank 0 writes; every rank holds the same state, except sharded optimizer
  // or EMA state, which every rank sends to rank 0 (the file stays whole).
  if (!joins_save(r)) return;
  const auto t0 = std::chrono::steady_clock::now();
  const CheckpointData data = collect_state(r);
  if (!r.ctx.is_main()) return;
  save_checkpoint(path, data);
  prune_checkpoints(dir, r.config.training.keep_checkpoints, r.config.training.keep_every);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log_info("checkpoint ", path, " (", s, " s)");
  if (r.metrics) r.metrics->record_checkpoint(r.step, s);
}

// training.phema_snapshot_kimg: when the images seen cross a multiple of it
// (EDM2's snapshot_nimg; here the batch need not divide it), rank 0 stores
// every power-function profile in workdir/phema/ for `scorch phema`. Called
// after every step, before its checkpoint: a preempted run has its snapshot.
void store_phema_snapshots(Run& r) {
  const double kimg = r.config.training.phema_snapshot_kimg;
  if (kimg <= 0 || r.ema->phema_std().empty()) return;
  const int64_t every = std::max<int64_t>(1, std::llround(kimg * 1000));
  const int64_t before = r.images_seen - r.config.training.batch_size;
  if (r.images_seen / every == before / every) return;
  if (!joins_save(r)) return;
  const auto dir = (r.workdir / "phema").string();
  save_phema_snapshots(dir, *r.ema, *r.net, r.step, r.images_seen, to_yaml(r.config), *r.comm);
  if (!r.ctx.is_main()) return;
  log_info("power-function EMA snapshots at step ", r.step, " (", r.images_seen, " images): ",
           r.ema->phema_std().size(), " profile(s) in ", dir);
}

namespace {

// The collectives this run uses: local for one rank, else dist.backend's.
std::unique_ptr<Communicator> make_training_communicator(const Run& r) {
  const auto& d = r.config.dist;
  if (r.ctx.world_size == 1) return make_local_communicator();
  return make_communicator(r.ctx, d.backend, d.timeout_s);
}

// Rank 0's parameters and buffers to every rank. Collectives take contiguous
// tensors: a channels-last weight (model.channels_last) goes as a dense copy.
void broadcast_state(Run& r) {
  if (r.ctx.world_size == 1) return;
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : module_state(*r.net)) {
    if (t.is_contiguous()) {
      r.comm->broadcast(t, 0);
      continue;
    }
    auto dense = t.contiguous();
    r.comm->broadcast(dense, 0);
    t.copy_(dense);
  }
}

// dist.check_every: every rank must hold bitwise the same parameters.
void check_parameters_agree(Run& r) {
  torch::NoGradGuard no_grad;
  const auto state = module_state(*r.net);
  std::vector<torch::Tensor> sums;
  std::vector<std::string> names;
  for (const auto& [name, t] : state) {
    const auto d = t.detach().to(torch::kCPU, torch::kDouble);
    sums.push_back(torch::stack({d.sum(), d.pow(2).sum()}));
    names.push_back(name);
  }
  const auto mine = torch::stack(sums).unsqueeze(0).contiguous();  // [1, n, 2]
  const auto all = r.comm->all_gather(mine);                       // [W, n, 2]
  for (int64_t rank = 1; rank < all.size(0); ++rank) {
    const auto differs = (all[rank] != all[0]).any(1);
    if (!differs.any().item<bool>()) continue;
    const int64_t i = differs.nonzero()[0][0].item<int64_t>();
    throw RunFailure(detail::concat(
        "parameters differ across ranks at step ", r.step, ": '", names[static_cast<size_t>(i)],
        "' on rank ", rank, " is not rank 0's (dist.check_every=", r.config.dist.check_every,
        "); a rank ran different code or data, or hardware corrupted it"));
  }
}

// Every rank's string, in rank order (at most 2047 bytes each; longer ones are cut).
std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& mine) {
  constexpr int64_t kBytes = 2048;
  auto buf = torch::zeros({1, kBytes}, torch::kUInt8);
  std::memcpy(buf.data_ptr(), mine.data(), std::min<size_t>(mine.size(), kBytes - 1));
  const auto all = comm.all_gather(buf);
  std::vector<std::string> out;
  for (int64_t i = 0; i < all.size(0); ++i)
    out.emplace_back(reinterpret_cast<const char*>(all[i].contiguous().data_ptr<uint8_t>()));
  return out;
}

// monitor.enabled: every rank starts its endpoint; if one rank cannot (port in
// use), every rank stops with its message, rather than the others waiting for
// it in the next collective. Then rank 0 writes monitor.targets_file (if set)
// with every rank's host:port, labelled job="scorch", run=<workdir name>.
void start_metrics(Run& r) {
  const auto& m = r.config.monitor;
  std::string mine;
  try {
    r.metrics = std::make_unique<Metrics>(
        MetricsOptions{m.bind, m.port, r.ctx.rank, r.ctx.local_rank, r.ctx.device});
    mine = "+" + r.metrics->target();
  } catch (const Error& e) {
    mine = std::string("-") + e.what();
  }
  const auto all = all_gather_strings(*r.comm, mine);
  std::vector<std::string> targets;
  for (const auto& s : all) {
    if (s.empty() || s[0] != '+') fail(s.empty() ? "a rank sent no metrics endpoint" : s.substr(1));
    targets.push_back(s.substr(1));
  }
  std::string endpoints;
  for (const auto& t : targets) endpoints += (endpoints.empty() ? "" : ", ") + t;
  log_info("metrics: http://", r.metrics->target(), "/metrics (all ranks: ", endpoints, ")");
  if (r.ctx.is_main() && !m.targets_file.empty()) {
    const auto run = r.workdir.lexically_normal().filename().string();
    write_scrape_targets(m.targets_file, targets,
                         {{"job", "scorch"}, {"run", run.empty() ? r.workdir.string() : run}});
    log_info("metrics: Prometheus targets in ", m.targets_file);
  }
}

// Sums over the steps since the last log line.
struct Interval {
  QuartileStats quartiles;  // applied steps only
  double grad_norm_sum = 0, data_wait = 0;
  int64_t steps = 0, good_steps = 0, images = 0;
  Clock::time_point start = Clock::now();
};

// One step's values for the Prometheus endpoint (quartiles of every rank).
void record_step_metrics(Run& r, const StepOutcome& s) {
  StepMetrics m;
  m.step = s.step + 1;
  m.images = r.share();
  m.seconds = s.seconds;
  m.data_wait_seconds = s.data_wait;
  m.allreduce_wait_seconds_total = r.sync ? r.sync->wait_seconds() : 0.0;
  double sum = 0;
  int64_t count = 0;
  for (int q = 0; q < 4; ++q) {
    sum += s.quartiles.sum[q], count += s.quartiles.count[q];
    m.loss_by_quartile[q] = s.quartiles.mean(q);
  }
  m.loss = count ? sum / count : 0.0;
  m.grad_norm = s.grad_norm;
  m.learning_rate = r.optimizer->lr_at(s.step);
  m.loss_scale = s.loss_scale;
  m.skipped = !s.finite;
  r.metrics->record_step(m);
}

// A log.jsonl record and a log line for the interval; returns its mean loss.
double log_interval(Run& r, RunLog& run_log, const Interval& in, double seconds) {
  double loss_sum = 0;
  int64_t count = 0;
  for (int q = 0; q < 4; ++q) loss_sum += in.quartiles.sum[q], count += in.quartiles.count[q];
  nlohmann::json rec = {{"step", r.step},
                        {"loss", count ? loss_sum / count : 0.0},
                        {"grad_norm", in.good_steps ? in.grad_norm_sum / in.good_steps : 0.0},
                        {"lr", r.optimizer->lr_at(r.step - 1)},
                        {"images_per_s", in.images / std::max(seconds, 1e-9)},
                        {"data_wait_s", in.data_wait},
                        {"data_wait_fraction", in.data_wait / std::max(seconds, 1e-9)},
                        {"skipped_steps", in.steps - in.good_steps},
                        {"images_seen", r.images_seen}};
  if (r.scaler->enabled()) rec["loss_scale"] = r.scaler->scale();
  if (r.sync) rec["allreduce_wait_s"] = r.sync->wait_seconds();
  for (int q = 0; q < 4; ++q)
    rec["loss_q" + std::to_string(q + 1)] = in.quartiles.count[q] ? in.quartiles.mean(q) : 0.0;
  run_log.write(rec);
  log_info("step ", r.step, " loss ", rec["loss"].get<double>(), " grad_norm ",
           rec["grad_norm"].get<double>(), " lr ", rec["lr"].get<double>(), " images/s ",
           rec["images_per_s"].get<double>(), " data wait ",
           100 * rec["data_wait_fraction"].get<double>(), "%",
           r.scaler->enabled() ? " loss scale " + std::to_string(r.scaler->scale()) : "");
  return rec["loss"].get<double>();
}

// --- set-up and resume --------------------------------------------------------

// The context, communicator and every object of the run, in the order that
// fixes the initial weights (seed_streams before the network is built).
void set_up(Run& r) {
  const auto& c = r.config;
  const auto& t = c.training;
  r.ctx = make_context(c);
  log_info("resolved config:\n", to_yaml(c));
  const int64_t world = r.ctx.world_size, accum = t.grad_accum;
  SCORCH_CHECK(t.batch_size % (world * accum) == 0, "training.batch_size=", t.batch_size,
               " must be a multiple of ranks x training.grad_accum = ", world, " x ", accum, " = ",
               world * accum, " (the per-rank micro-batch must be a whole number); e.g. ",
               (t.batch_size / (world * accum) + 1) * world * accum);
  r.micro_batch = r.share() / accum;
  r.comm = make_training_communicator(r);
  r.cpu_comm = make_host_communicator(r.ctx, c.dist.backend, c.dist.timeout_s);
  log_info("device ", r.ctx.device.str(), ", ", world, world > 1 ? " ranks" : " rank",
           " (communicator ", r.comm->name(), "), global batch ", t.batch_size, " = ",
           r.micro_batch, " per micro-batch x ", world, " x ", accum, " accumulation");

  seed_streams(c.seed, kInitStream, 0);
  r.sde = make_sde(c);
  r.net = make_score_net(c);
  r.net->to(r.ctx.device);
  r.net->train();
  log_info("model ", c.model.name, ": ", count_trainable_parameters(*r.net),
           " trainable parameters");
  r.timestep_sampler = make_timestep_sampler(c, *r.sde);
  r.loss = make_loss(c, r.sde, r.timestep_sampler);
  r.optimizer = std::make_unique<Optimizer>(r.net->named_parameters(), c.optim);
  // ZeRO stage 1 (dist.shard_state): with one rank there is nothing to split.
  if (c.dist.shard_state != ShardState::kNone && world > 1) {
    r.shards = std::make_shared<ParamShards>(
        r.optimizer->params(), r.ctx.rank, static_cast<int>(world),
        static_cast<int64_t>(c.dist.bucket_mb * 1024 * 1024));
    r.optimizer->shard(r.shards, r.comm.get());
    // The parameters in one buffer, shard by shard: the all-gather after each
    // update writes into them in place.
    r.shards->flatten(r.optimizer->params());
  }
  if (r.shards && c.dist.shard_state == ShardState::kOptimizerEma)
    r.ema = std::make_unique<Ema>(*r.net, c.model, r.shards, r.comm.get());
  else
    r.ema = std::make_unique<Ema>(*r.net, c.model);
  if (r.shards)
    log_info("dist.shard_state=", choice_name(c.dist.shard_state), ": this rank keeps state for ",
             r.shards->local_total(), " of ", r.shards->numel(), " parameter elements");
  const bool fp16 = c.precision.dtype == PrecisionDtype::kFp16;
  r.scaler = std::make_unique<LossScaler>(c.precision, fp16, r.ctx.device);
  r.autocast = autocast_dtype(c.precision, r.ctx.device);
  if (fp16 && !r.autocast)
    log_info("precision.dtype=fp16 on ", r.ctx.device.str(),
             ": LibTorch's CPU autocast has no float16, so the forward pass stays float32; "
             "dynamic loss scaling runs as it does on a GPU");
  r.data = make_data_source(c, DataPlacement{r.ctx.rank, r.ctx.world_size, r.ctx.device.is_cuda()});
  if (c.eval.freq > 0) {  // loaded before the first step, not at the first evaluation
    r.reference = load_reference_stats(c.eval.reference);
    r.extractor = load_feature_extractor(c.eval.feature_extractor, r.ctx.device);
  }
  for (const auto& item : r.net->named_parameters())
    if (item.value().requires_grad()) r.named_params.emplace_back(item.key(), item.value());
}

// The step of the newest loadable checkpoint (rank 0 decides, every rank
// learns it): -1 for none, -2 when checkpoints exist but none loads.
int64_t pick_checkpoint(Run& r, const std::string& dir, std::string& why) {
  auto pick = torch::full({1}, int64_t{-1}, torch::kLong);
  if (r.ctx.is_main()) {
    std::vector<std::string> unreadable;
    if (auto latest = find_latest_checkpoint(dir, &unreadable)) {
      for (const auto& w : unreadable) log_warning(w);
      pick[0] = *checkpoint_step(fs::path(*latest).filename().string());
    } else if (!unreadable.empty()) {
      // Checkpoints exist but none loads: starting over would bury them.
      for (const auto& w : unreadable) why += "\n  " + w;
      pick[0] = -2;
    }
  }
  if (r.ctx.world_size > 1) r.comm->broadcast(pick, 0);
  return pick[0].item<int64_t>();
}

// Every rank loads the newest checkpoint (if any), then takes rank 0's
// parameters; gradient synchronisation and metrics start.
void resume(Run& r) {
  const auto dir = (r.workdir / "checkpoints").string();
  std::string why;
  const int64_t picked = pick_checkpoint(r, dir, why);
  if (picked == -2)
    fail(r.ctx.is_main() ? "no checkpoint in '" + dir + "' can be loaded:" + why +
                               "\nmove them aside to train from scratch, or restore a good copy"
                         : "rank 0 found no loadable checkpoint in '" + dir +
                               "' (its message says why)");
  if (picked >= 0) {
    const auto path = checkpoint_path(dir, picked);
    restore_state(r, load_checkpoint(path), path);
    r.last_checkpoint = path;
    r.last_checkpoint_step = r.step;
    log_info("resumed from ", path, " at step ", r.step);
  }
  broadcast_state(r);
  if (r.ctx.world_size > 1)
    r.sync = std::make_unique<GradSync>(r.net->named_parameters(), *r.comm,
                                        GradSyncOptions{r.config.dist.bucket_mb});
  if (r.config.monitor.enabled) start_metrics(r);
}

// "preempted by signal SIGUSR2", or where the signal reached another rank.
std::string preempted_by(const PreemptionWatch& preemption) {
  return preemption.signal() ? "preempted by signal " + signal_name(preemption.signal())
                             : "preempted (a signal reached another rank)";
}

// A preemption signal that came during set-up (held since main() started)
// stops the run before its first step, with nothing written: the newest
// checkpoint, if any, is where the next run resumes anyway.
void stop_if_preempted_before_first_step(Run& r, const PreemptionWatch& preemption) {
  auto flag = torch::full({1}, preemption.requested() ? 1.0 : 0.0, torch::kDouble);
  if (r.ctx.world_size > 1) r.comm->all_reduce_sum(flag);
  if (flag[0].item<double>() == 0) return;
  throw Preempted(detail::concat(
      preempted_by(preemption), " before the first step of this run (at step ", r.step,
      "); nothing was written; run the same command to ",
      r.step > 0 ? "resume" : "start"));
}

// --- after each step ----------------------------------------------------------

// Non-finite loss or gradients: the step was skipped; after
// training.nonfinite_patience in a row, training stops (exit 1). `latest`:
// the step is the newest one, whose gradients are still there to name.
void handle_skipped_step(Run& r, const StepOutcome& s, bool latest, int64_t& nonfinite_run) {
  const auto& t = r.config.training;
  ++nonfinite_run;
  const std::string what = s.loss_finite ? "gradients" : "loss";
  if (r.scaler->enabled())
    log_info("step ", s.step, ": non-finite ", what, " (fp16 overflow); step skipped, loss "
             "scale now ", s.loss_scale);
  else
    log_info("step ", s.step, ": non-finite ", what, "; step skipped (", nonfinite_run,
             " in a row, training.nonfinite_patience=", t.nonfinite_patience, ")");
  if (nonfinite_run <= t.nonfinite_patience) return;
  auto bad = latest ? nonfinite_tensor_names(r.named_params) : std::vector<std::string>{};
  std::string names;
  for (size_t i = 0; i < bad.size() && i < 8; ++i) names += (i ? ", " : "") + bad[i];
  if (bad.size() > 8) names += ", ... (" + std::to_string(bad.size()) + " in all)";
  throw RunFailure(detail::concat(
      "training stopped at step ", s.step, " after ", nonfinite_run,
      " non-finite steps in a row (training.nonfinite_patience=", t.nonfinite_patience,
      "): ", s.loss_finite ? "the loss is finite" : "the loss is not finite",
      bad.empty() ? std::string("") : "; non-finite gradients in " + names,
      r.scaler->enabled() ? "; fp16 loss scale " + std::to_string(s.loss_scale) : "",
      ". Lower optim.lr, raise optim.warmup, use precision.dtype=bf16 or fp32, or check "
      "the data. The newest checkpoint (", r.last_checkpoint.empty() ? "none" : r.last_checkpoint,
      ") was written before this and is intact"));
}

// Counts the step into the interval; at log_freq (and the last step) writes
// the log line and throughput metric and starts a new interval.
void log_step(Run& r, const StepOutcome& s, Interval& in, RunLog* run_log, TrainResult& result) {
  const int64_t step = s.step + 1;
  in.data_wait += s.data_wait;
  if (s.finite) {
    in.grad_norm_sum += s.grad_norm;
    in.good_steps += 1;
    in.quartiles.merge(s.quartiles);
  }
  in.steps += 1;
  in.images += r.config.training.batch_size;
  if (r.metrics) record_step_metrics(r, s);
  if (step % r.config.training.log_freq != 0 && step != r.config.training.n_iters) return;
  const double secs = seconds_since(in.start);
  if (r.metrics)
    r.metrics->record_throughput(static_cast<double>(in.images) / r.ctx.world_size /
                                 std::max(secs, 1e-9));
  if (run_log) result.loss = log_interval(r, *run_log, in, secs);
  in = Interval{};
}

// Whether anything after the step at r.step (already advanced) reads the
// host: a log line, a checkpoint, samples, an evaluation, a parameter check.
// Other steps are not settled, so the host never waits for the device.
bool settle_due(const Run& r, bool preempt) {
  const auto& c = r.config;
  const auto& t = c.training;
  const auto every = [&](int64_t freq) { return freq > 0 && r.step % freq == 0; };
  return preempt || r.step == t.n_iters || every(t.log_freq) || every(t.snapshot_freq) ||
         every(t.snapshot_freq_for_preemption) || every(c.eval.freq) ||
         (r.ctx.world_size > 1 && every(c.dist.check_every));
}

// Reads the records of the steps since the last settle in one transfer, in
// step order: skipped steps (and training.nonfinite_patience), the log
// interval and the step metrics.
void settle(Run& r, std::vector<StepRecord>& pending, Interval& in, RunLog* run_log,
            TrainResult& result, int64_t& nonfinite_run) {
  if (pending.empty()) return;
  std::vector<torch::Tensor> rows;
  for (const auto& p : pending) rows.push_back(p.row);
  const auto host = torch::stack(rows).cpu();
  for (size_t i = 0; i < pending.size(); ++i) {
    const StepOutcome s = read_outcome(pending[i], host[static_cast<int64_t>(i)]);
    if (s.finite) {
      nonfinite_run = 0;
    } else {
      result.skipped_steps += 1;
      handle_skipped_step(r, s, i + 1 == pending.size(), nonfinite_run);
    }
    log_step(r, s, in, run_log, result);
  }
  pending.clear();
}

// Checkpoints at their frequencies and on preemption; after a preemption
// snapshot every rank stops (exit 75).
void checkpoint_or_stop(Run& r, bool preempt, PreemptionWatch& preemption) {
  const auto& t = r.config.training;
  const bool snapshot = r.step % t.snapshot_freq == 0 || r.step == t.n_iters;
  if (snapshot || preempt || r.step % t.snapshot_freq_for_preemption == 0) save(r);
  if (!preempt) return;
  r.comm->barrier();  // rank 0's snapshot is complete before any rank exits
  preemption.done();
  throw Preempted(detail::concat(
      preempted_by(preemption), ": stopped at step ", r.step, " with snapshot ", r.last_checkpoint,
      "; run the same command to resume"));
}

// EMA samples at snapshot_freq and evaluation at eval.freq, both shared by
// every rank (rank 0 writes); the evaluation's time is not counted as
// training time.
void sample_and_evaluate(Run& r, Interval& in, RunLog* run_log, nlohmann::json& quality) {
  const auto& c = r.config;
  const bool snapshot = r.step % c.training.snapshot_freq == 0 || r.step == c.training.n_iters;
  if (snapshot && c.training.snapshot_sampling) {  // every rank draws its share
    quality = snapshot_samples(r);
    if (!quality.empty() && run_log) run_log->write({{"step", r.step}, {"quality", quality}});
  }
  if (c.eval.freq > 0 && r.step % c.eval.freq == 0) {
    const auto e0 = Clock::now();
    const auto report = evaluate_during_training(r);
    if (run_log) run_log->write({{"step", r.step}, {"eval", report}});
    if (r.metrics) r.metrics->record_eval(r.step, report);
    in.start += Clock::now() - e0;
  }
}

// --- the end ------------------------------------------------------------------

void report_quality(const Run& r, nlohmann::json& quality) {
  const auto file = r.workdir / "eval" / "quality.json";
  if (quality.empty() && fs::exists(file))  // finished earlier
    quality = nlohmann::json::parse(std::ifstream(file));
  if (!quality.empty())
    log_info("quality at step ", quality["step"].get<int64_t>(),
             ": sliced Wasserstein distance of EMA samples to held-out data ",
             quality["swd"].get<double>(), " (floor: data vs data ",
             quality["swd_floor"].get<double>(), "; moment-matched Gaussian ",
             quality["swd_gaussian"].get<double>(), "; lower is better)");
}

void stop_metrics(Run& r) {
  if (!r.metrics) return;
  // A last scrape sees the final step; then the run leaves Prometheus's targets.
  r.metrics->linger(r.config.monitor.linger_s);
  if (r.ctx.is_main() && !r.config.monitor.targets_file.empty())
    remove_scrape_targets(r.config.monitor.targets_file);
}

}  // namespace

nlohmann::json to_json(const TrainResult& r) {
  nlohmann::json j = {
      {"step", r.step}, {"start_step", r.start_step}, {"images_seen", r.images_seen},
      {"loss", r.loss}, {"seconds", r.seconds},       {"checkpoint", r.last_checkpoint},
      {"world_size", r.world_size}, {"skipped_steps", r.skipped_steps}};
  if (!r.quality.empty()) j["quality"] = r.quality;
  return j;
}

Trainer::Trainer(Config config, std::string workdir)
    : config_(std::move(config)), workdir_(std::move(workdir)) {
  std::error_code ec;
  for (const char* sub : {"checkpoints", "samples", "eval"}) {
    fs::create_directories(fs::path(workdir_) / sub, ec);
    SCORCH_CHECK(!ec, "cannot create workdir '", workdir_, "/", sub, "': ", ec.message());
  }
}


TrainResult Trainer::run() {
  const auto wall0 = Clock::now();
  // The handlers first: a signal during the slow set-up stops the run before
  // its first step instead of ending the process.
  PreemptionWatch preemption(preemption_signal_numbers(config_), config_.preemption.grace_s);
  Run r;
  r.config = config_;
  r.workdir = workdir_;
  set_up(r);
  resume(r);
  stop_if_preempted_before_first_step(r, preemption);
  std::optional<RunLog> run_log;
  if (r.ctx.is_main()) {
    // Written once the checkpoint (if any) has loaded: a config that cannot
    // resume this workdir leaves the saved one untouched.
    write_file_atomic((r.workdir / "config.yaml").string(), to_yaml(r.config));
    run_log.emplace((r.workdir / "log.jsonl").string(), r.step);
  }
  TrainResult result;
  result.rank = r.ctx.rank;
  result.world_size = r.ctx.world_size;
  result.start_step = r.step;
  Interval interval;
  int64_t nonfinite_run = 0;
  nlohmann::json quality;
  std::vector<StepRecord> pending;  // steps not yet read on the host
  while (r.step < r.config.training.n_iters) {
    pending.push_back(train_step(r, preemption));
    const bool preempt = pending.back().preempt;
    r.step += 1;
    r.images_seen += r.config.training.batch_size;
    store_phema_snapshots(r);
    if (!settle_due(r, preempt)) continue;
    settle(r, pending, interval, run_log ? &*run_log : nullptr, result, nonfinite_run);
    if (r.config.dist.check_every > 0 && r.ctx.world_size > 1 &&
        r.step % r.config.dist.check_every == 0)
      check_parameters_agree(r);
    checkpoint_or_stop(r, preempt, preemption);
    sample_and_evaluate(r, interval, run_log ? &*run_log : nullptr, quality);
  }
  if (r.ctx.world_size > 1) r.comm->barrier();  // the final checkpoint is on disk for every rank
  report_quality(r, quality);
  result.step = r.step;
  result.images_seen = r.images_seen;
  result.last_checkpoint = r.last_checkpoint;
  result.quality = quality;
  result.seconds = seconds_since(wall0);
  stop_metrics(r);
  return result;
}

}  // namespace scorch
