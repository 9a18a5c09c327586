// The training loop (see trainer.h). Each step: this rank's share of the
// global batch, split into training.grad_accum micro-batches; per micro-batch
// the loss under autocast with noise drawn per global sample, and backward
// of the loss times the loss scale; GradSync's hooks all-reduce gradient
// buckets during the last backward; then unscale, clip, one small all-reduce
// of loss statistics and overflow/preemption flags, and the optimizer and
// EMA step unless a gradient or the loss was non-finite. In-network
// randomness (dropout) comes from generators seeded by (seed, rank, step), and
// the data stream is positioned by a global cursor, so a resumed run, on any
// number of ranks, continues where a run that never stopped would be.
#include "train/trainer.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/image.h"
#include "core/log.h"
#include "core/batch_random.h"
#include "core/rng.h"
#include "data/source.h"
#include "dist/communicator.h"
#include "dist/context.h"
#include "dist/grad_sync.h"
#include "eval/model_eval.h"
#include "eval/reference_stats.h"
#include "eval/toy_quality.h"
#include "losses/loss.h"
#include "monitor/metrics.h"
#include "monitor/run_log.h"
#include "monitor/scrape_targets.h"
#include "nn/patch.h"
#include "nn/score_model.h"
#include "nn/score_net.h"
#include "sampling/pc_sampler.h"
#include "train/checkpoint.h"
#include "train/ema.h"
#include "train/optimizer.h"
#include "train/precision.h"
#include "train/preemption.h"

namespace scorch {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kInitStream = 0x1417;
constexpr uint64_t kSampleStream = 0x5A3E;
constexpr uint64_t kLabelDropoutSeed = 0xD509;
constexpr uint64_t kPatchCropSeed = 0xC409;

// Per-step statistics summed over ranks in one all-reduce: loss sums and
// counts by quartile of t, non-finite gradients, preemption requests.
enum Stat { kQuartileSum = 0, kQuartileCount = 4, kNonfiniteGrad = 8, kPreempt = 9, kNumStats };

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08lld", static_cast<long long>(step));
  return buf;
}

void write_text_atomic(const fs::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    SCORCH_CHECK(out.good(), "cannot write '", tmp, "'");
    out << text;
  }
  fs::rename(tmp, path);
}

// Everything one run holds; built once, used by the loop below.
struct Run {
  Config config;
  fs::path workdir;
  DistContext ctx;
  std::unique_ptr<Communicator> comm;
  std::shared_ptr<Sde> sde;
  ScoreNet net;
  std::unique_ptr<Loss> loss;
  std::shared_ptr<TimestepSampler> timestep_sampler;  // training.timestep_sampler != uniform
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<Ema> ema;
  std::unique_ptr<LossScaler> scaler;
  std::unique_ptr<GradSync> sync;  // more than one rank
  std::unique_ptr<DataSource> data;
  std::optional<torch::ScalarType> autocast;
  int64_t step = 0;
  int64_t images_seen = 0;
  std::string last_checkpoint;
  int64_t last_checkpoint_step = -1;
  std::unique_ptr<Metrics> metrics;  // monitor.enabled: this rank's Prometheus endpoint
  // eval.freq > 0: the extractor and reference statistics, loaded once.
  std::unique_ptr<FeatureExtractor> extractor;
  std::optional<ReferenceStats> reference;
};

CheckpointData collect_state(const Run& r) {
  CheckpointData c;
  c.model = module_state(*r.net);
  c.ema = r.ema->state_dict();
  c.ema_num_updates = r.ema->num_updates();
  c.optimizer = r.optimizer->state_dict();
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
  for (const auto& name : r.ema->load_state_dict(c.ema, c.ema_num_updates, r.net.get()))
    log_warning("checkpoint '", path, "' has no EMA '", name,
                "'; it starts from the current weights");
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

// EMA samples (first EMA rate) written as a PNG; 2-D data also gets its
// sliced-Wasserstein quality. Returns the quality JSON (empty for images).
nlohmann::json snapshot_samples(Run& r) {
  const auto& c = r.config;
  const int64_t n =
      c.training.snapshot_num_samples > 0 ? c.training.snapshot_num_samples : c.sampling.batch_size;
  std::vector<int64_t> shape =
      is_image_data(c)
          ? std::vector<int64_t>{n, c.data.num_channels, c.data.image_size, c.data.image_size}
          : std::vector<int64_t>{n, c.data.dim};
  const auto dir = r.workdir / "samples" / ("iter_" + step_name(r.step));
  fs::create_directories(dir);
  r.ema->store(*r.net);
  r.ema->copy_to(*r.net, r.ema->default_name());
  r.net->eval();
  seed_streams(c.seed, kSampleStream, r.step);
  const auto options = pc_options_from_config(c.sampling, sampling_eps(c), sampling_steps(c));
  auto score = make_score_fn(r.net, r.sde, c.training.continuous);
  torch::Tensor x;
  for (int64_t done = 0; done < n;) {
    const int64_t b = std::min(c.sampling.batch_size, n - done);
    shape[0] = b;
    auto part =
        pc_sample(*r.sde, score, shape, torch::TensorOptions().device(r.ctx.device), options).x;
    x = x.defined() ? torch::cat({x, part.cpu()}) : part.cpu();
    done += b;
  }
  r.net->train();
  r.ema->restore(*r.net);

  nlohmann::json quality;
  if (is_image_data(c)) {
    auto images = inverse_scale_data(x, c.data.centered).clamp(0, 1);
    write_png((dir / "samples.png").string(),
              image_grid(images.narrow(0, 0, std::min<int64_t>(n, 64))));
  } else if (c.data.dataset == "hdf5") {  // vectors from a dataset: a plot of 2-D ones
    if (x.size(1) == 2) write_png((dir / "samples.png").string(), scatter_plot(x));
  } else {
    const auto q = toy_quality(c, x);
    quality = to_json(q);
    quality["step"] = r.step;
    // EMA samples in blue over held-out data in grey.
    write_png((dir / "samples.png").string(), scatter_plot(x, toy_held_out(c, n)));
    write_text_atomic(dir / "quality.json", quality.dump(2) + "\n");
    write_text_atomic(r.workdir / "eval" / "quality.json", quality.dump(2) + "\n");
  }
  log_info("snapshot at step ", r.step, ": ", dir.string(),
           quality.empty() ? "" : " swd=" + std::to_string(quality["swd"].get<double>()));
  return quality;
}

// eval.freq: FID/IS/KID of eval.freq_num_samples EMA samples, drawn on every
// rank with per-sample noise (the same images at every evaluation and on any
// number of ranks, so the curve shows the model, not the noise). Rank 0
// writes the report to log.jsonl ({"step", "eval"}) and eval/.
nlohmann::json evaluate_during_training(Run& r) {
  const auto& c = r.config;
  torch::NoGradGuard no_grad;
  r.ema->store(*r.net);
  r.ema->copy_to(*r.net, r.ema->default_name());
  r.net->eval();
  SampleEvalOptions o;
  o.num = c.eval.freq_num_samples;
  o.batch_size = c.sampling.batch_size;
  o.seed = c.seed;
  o.progress = false;
  auto report = evaluate_model(c, r.sde, r.net, r.ctx.device, *r.extractor, *r.reference, *r.comm, o);
  r.net->train();
  r.ema->restore(*r.net);
  if (!r.ctx.is_main()) return report;
  report["step"] = r.step;
  report["ema"] = r.ema->default_name();
  write_text_atomic(r.workdir / "eval" / ("eval_" + step_name(r.step) + ".json"),
                    report.dump(2) + "\n");
  log_info("eval at step ", r.step, ": FID ", report["fid"].dump(), ", IS ",
           report["inception_score"].dump(), ", KID ", report["kid"].dump(), " (",
           o.num, " EMA samples, ", report["seconds"].get<double>(), " s)");
  return report;
}

void save(Run& r) {
  if (r.last_checkpoint_step == r.step) return;
  r.last_checkpoint_step = r.step;
  const auto dir = (r.workdir / "checkpoints").string();
  const auto path = checkpoint_path(dir, r.step);
  r.last_checkpoint = path;
  if (!r.ctx.is_main()) return;  // rank 0 writes; every rank holds the same state
  const auto t0 = std::chrono::steady_clock::now();
  save_checkpoint(path, collect_state(r));
  prune_checkpoints(dir, r.config.training.keep_checkpoints, r.config.training.keep_every);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log_info("checkpoint ", path, " (", s, " s)");
  if (r.metrics) r.metrics->record_checkpoint(r.step, s);
}

// The collectives this run uses: local for one rank, MPI on the CPU. CUDA
// with several ranks needs the NCCL communicator of a CUDA build.
std::unique_ptr<Communicator> make_training_communicator(const Run& r) {
  const auto& d = r.config.dist;
  if (r.ctx.world_size == 1) return make_local_communicator();
  if (r.ctx.device.is_cuda())
    fail(detail::concat("training on ", r.ctx.device.str(), " with ", r.ctx.world_size,
                        " ranks needs the NCCL communicator, which Scorch does not have yet "
                        "(multi-GPU training is still to come); train on one GPU, or on the CPU with "
                        "dist.device=cpu"));
  SCORCH_CHECK(d.backend != "nccl", "dist.backend=nccl needs CUDA devices, but this run is on ",
               r.ctx.device.str(), "; use dist.backend=auto or mpi");
  return make_communicator(r.ctx, d.timeout_s);
}

// Rank 0's parameters and buffers to every rank.
void broadcast_state(Run& r) {
  if (r.ctx.world_size == 1) return;
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : module_state(*r.net)) r.comm->broadcast(t, 0);
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

// One step's values for the Prometheus endpoint; `quartiles` hold every
// rank's sums (after the all-reduce).
void record_step_metrics(Run& r, const QuartileStats& quartiles, double grad_norm, bool finite,
                         int64_t images, std::chrono::steady_clock::time_point step_start,
                         double data_wait) {
  StepMetrics m;
  m.step = r.step;
  m.images = images;
  m.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
  m.data_wait_seconds = data_wait;
  m.allreduce_wait_seconds_total = r.sync ? r.sync->wait_seconds() : 0.0;
  double sum = 0;
  int64_t count = 0;
  for (int q = 0; q < 4; ++q) {
    sum += quartiles.sum[q], count += quartiles.count[q];
    m.loss_by_quartile[q] = quartiles.mean(q);
  }
  m.loss = count ? sum / count : 0.0;
  m.grad_norm = grad_norm;
  m.learning_rate = r.optimizer->lr_at(r.step - 1);
  m.loss_scale = r.scaler->scale();
  m.skipped = !finite;
  r.metrics->record_step(m);
}

void log_interval(Run& r, RunLog& run_log, TrainResult& result, const QuartileStats& quartiles,
                  double grad_norm_sum, int64_t good_steps, int64_t steps, double data_wait,
                  double seconds, int64_t images) {
  double loss_sum = 0;
  int64_t count = 0;
  for (int q = 0; q < 4; ++q) loss_sum += quartiles.sum[q], count += quartiles.count[q];
  nlohmann::json rec = {{"step", r.step},
                        {"loss", count ? loss_sum / count : 0.0},
                        {"grad_norm", good_steps ? grad_norm_sum / good_steps : 0.0},
                        {"lr", r.optimizer->lr_at(r.step - 1)},
                        {"images_per_s", images / std::max(seconds, 1e-9)},
                        {"data_wait_s", data_wait},
                        {"data_wait_fraction", data_wait / std::max(seconds, 1e-9)},
                        {"skipped_steps", steps - good_steps},
                        {"images_seen", r.images_seen}};
  if (r.scaler->enabled()) rec["loss_scale"] = r.scaler->scale();
  if (r.sync) rec["allreduce_wait_s"] = r.sync->wait_seconds();
  for (int q = 0; q < 4; ++q)
    rec["loss_q" + std::to_string(q + 1)] = quartiles.count[q] ? quartiles.mean(q) : 0.0;
  run_log.write(rec);
  log_info("step ", r.step, " loss ", rec["loss"].get<double>(), " grad_norm ",
           rec["grad_norm"].get<double>(), " lr ", rec["lr"].get<double>(), " images/s ",
           rec["images_per_s"].get<double>(), " data wait ",
           100 * rec["data_wait_fraction"].get<double>(), "%",
           r.scaler->enabled() ? " loss scale " + std::to_string(r.scaler->scale()) : "");
  result.loss = rec["loss"].get<double>();
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
  const auto wall0 = std::chrono::steady_clock::now();
  Run r;
  r.config = config_;
  r.workdir = workdir_;
  const auto& c = r.config;
  const auto& t = c.training;
  const std::string yaml = to_yaml(c);

  r.ctx = make_context(c);
  log_info("resolved config:\n", yaml);
  const int64_t world = r.ctx.world_size, accum = t.grad_accum;
  SCORCH_CHECK(t.batch_size % (world * accum) == 0, "training.batch_size=", t.batch_size,
               " must be a multiple of ranks x training.grad_accum = ", world, " x ", accum, " = ",
               world * accum, " (the per-rank micro-batch must be a whole number); e.g. ",
               (t.batch_size / (world * accum) + 1) * world * accum);
  const int64_t share = t.batch_size / world, micro = share / accum;
  r.comm = make_training_communicator(r);
  log_info("device ", r.ctx.device.str(), ", ", world, world > 1 ? " ranks" : " rank",
           " (communicator ", r.comm->name(), "), global batch ", t.batch_size, " = ", micro,
           " per micro-batch x ", world, " x ", accum, " accumulation");

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
  r.ema = std::make_unique<Ema>(*r.net, c.model);
  r.scaler = std::make_unique<LossScaler>(c.precision, c.precision.dtype == "fp16");
  r.autocast = autocast_dtype(c.precision, r.ctx.device);
  if (c.precision.dtype == "fp16" && !r.autocast)
    log_info("precision.dtype=fp16 on ", r.ctx.device.str(),
             ": LibTorch's CPU autocast has no float16, so the forward pass stays float32; "
             "dynamic loss scaling runs as it does on a GPU");
  r.data = make_data_source(c, DataPlacement{r.ctx.rank, r.ctx.world_size, r.ctx.device.is_cuda()});
  if (c.eval.freq > 0) {  // checked before the first step, not at the first evaluation
    SCORCH_CHECK(is_image_data(c), "eval.freq=", c.eval.freq, " computes FID of images; data.dataset '",
                 c.data.dataset, "' is vector data (its snapshots report a sliced Wasserstein "
                 "distance instead); set eval.freq=0");
    SCORCH_CHECK(!c.eval.reference.empty() && !c.eval.feature_extractor.empty(), "eval.freq=",
                 c.eval.freq, " needs eval.reference (statistics from `scorch stats`) and "
                 "eval.feature_extractor (a TorchScript file or a `scorch classifier` checkpoint)");
    r.reference = load_reference_stats(c.eval.reference);
    r.extractor = load_feature_extractor(c.eval.feature_extractor, r.ctx.device);
  }

  // Rank 0 picks the checkpoint; every rank loads it.
  TrainResult result;
  result.rank = r.ctx.rank;
  result.world_size = r.ctx.world_size;
  const auto ckpt_dir = (r.workdir / "checkpoints").string();
  auto pick = torch::full({1}, int64_t{-1}, torch::kLong);
  std::string pick_error;
  if (r.ctx.is_main()) {
    std::vector<std::string> unreadable;
    if (auto latest = find_latest_checkpoint(ckpt_dir, &unreadable)) {
      for (const auto& w : unreadable) log_warning(w);
      pick[0] = *checkpoint_step(fs::path(*latest).filename().string());
    } else if (!unreadable.empty()) {
      // Checkpoints exist but none loads: starting over would bury them.
      for (const auto& w : unreadable) pick_error += "\n  " + w;
      pick[0] = -2;
    }
  }
  if (world > 1) r.comm->broadcast(pick, 0);
  const int64_t picked = pick[0].item<int64_t>();
  if (picked == -2)
    fail(r.ctx.is_main() ? "no checkpoint in '" + ckpt_dir + "' can be loaded:" + pick_error +
                               "\nmove them aside to train from scratch, or restore a good copy"
                         : "rank 0 found no loadable checkpoint in '" + ckpt_dir +
                               "' (its message says why)");
  if (picked >= 0) {
    const auto path = checkpoint_path(ckpt_dir, picked);
    restore_state(r, load_checkpoint(path), path);
    r.last_checkpoint = path;
    r.last_checkpoint_step = r.step;
    log_info("resumed from ", path, " at step ", r.step);
  }
  broadcast_state(r);
  if (world > 1)
    r.sync = std::make_unique<GradSync>(r.net->named_parameters(), *r.comm,
                                        GradSyncOptions{c.dist.bucket_mb});
  if (c.monitor.enabled) start_metrics(r);

  std::optional<RunLog> run_log;
  if (r.ctx.is_main()) {
    // Written once the checkpoint (if any) has loaded: a config that cannot
    // resume this workdir leaves the saved one untouched.
    write_text_atomic(r.workdir / "config.yaml", yaml);
    run_log.emplace((r.workdir / "log.jsonl").string(), r.step);
  }
  result.start_step = r.step;
  PreemptionWatch preemption(preemption_signal_numbers(c), c.preemption.grace_s);

  QuartileStats quartiles;
  double grad_norm_sum = 0, data_wait = 0;
  int64_t interval_steps = 0, interval_good = 0, interval_images = 0, nonfinite_run = 0;
  auto interval_start = std::chrono::steady_clock::now();
  nlohmann::json quality;
  std::vector<std::pair<std::string, torch::Tensor>> named_params;
  for (const auto& item : r.net->named_parameters())
    if (item.value().requires_grad()) named_params.emplace_back(item.key(), item.value());
  auto stats = torch::zeros({kNumStats}, torch::kDouble);

  while (r.step < t.n_iters) {
    seed_streams(c.seed, static_cast<uint64_t>(r.ctx.rank), r.step);
    const auto wait0 = std::chrono::steady_clock::now();
    Batch batch = r.data->next(t.batch_size);
    const double step_data_wait =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wait0).count();
    data_wait += step_data_wait;
    auto x = batch.x.to(r.ctx.device, /*non_blocking=*/true);
    torch::Tensor labels;
    if (c.data.num_classes > 0) {
      SCORCH_CHECK(batch.labels.defined(), "data.num_classes=", c.data.num_classes,
                   " asks for class conditioning but data.dataset '", c.data.dataset,
                   "' has no labels; set data.num_classes=0");
      labels = batch.labels.to(r.ctx.device, /*non_blocking=*/true);
      SCORCH_CHECK(labels.max().item<int64_t>() < c.data.num_classes,
                   "data.num_classes=", c.data.num_classes, " but the data has label ",
                   labels.max().item<int64_t>());
      // Label dropout for classifier-free guidance: index num_classes is the null class.
      if (c.model.class_dropout > 0) {
        BatchRandom drop(mix64(c.seed ^ kLabelDropoutSeed), r.step, t.batch_size,
                         r.ctx.rank * share, share);
        labels = torch::where(drop.uniform({share}, x.options()) < c.model.class_dropout,
                              torch::full_like(labels, c.data.num_classes), labels);
      }
    }

    // Patch-based training: one random crop per image, placed per global sample.
    torch::Tensor patch_origins;
    if (c.model.patch_size > 0) {
      BatchRandom crop(mix64(c.seed ^ kPatchCropSeed), r.step, t.batch_size, r.ctx.rank * share,
                       share);
      Patches patches = random_patches(x, c.model.patch_size, crop);
      x = patches.x;
      patch_origins = patches.origins;
    }

    // Micro-batches: forward under autocast, backward of the scaled loss;
    // the gradient all-reduce overlaps the last micro-batch's backward.
    r.optimizer->zero_grad();
    QuartileStats step_quartiles;
    std::vector<torch::Tensor> step_levels, step_losses;  // this rank's rows, in order
    for (int64_t m = 0; m < accum; ++m) {
      BatchRandom noise(c.seed, r.step, t.batch_size, r.ctx.rank * share + m * micro, micro);
      const auto xm = accum == 1 ? x : x.narrow(0, m * micro, micro);
      const auto lm = !labels.defined() || accum == 1 ? labels : labels.narrow(0, m * micro, micro);
      if (r.sync) r.sync->set_enabled(m == accum - 1, /*add_accumulated=*/accum > 1);
      const auto om = !patch_origins.defined() || accum == 1
                          ? patch_origins
                          : patch_origins.narrow(0, m * micro, micro);
      LossOutput out;
      {
        PatchOriginsScope patch_scope(*r.net, om);
        AutocastGuard autocast(r.ctx.device, r.autocast);
        out = (*r.loss)(*r.net, xm, lm, &noise);
      }
      step_quartiles.add(out);
      if (r.timestep_sampler) {
        step_levels.push_back(out.level.to(torch::kCPU, torch::kDouble));
        step_losses.push_back(out.per_sample.to(torch::kCPU, torch::kDouble));
      }
      (out.loss.to(torch::kFloat) * (r.scaler->scale() / static_cast<double>(accum))).backward();
    }
    if (r.sync) r.sync->finish();
    r.scaler->unscale(r.optimizer->params());
    const double grad_norm = r.optimizer->clip_gradients();

    // One all-reduce: the loss statistics, and every rank's view of
    // overflow and preemption, so that all ranks decide alike.
    auto acc = stats.accessor<double, 1>();
    for (int q = 0; q < 4; ++q) {
      acc[kQuartileSum + q] = step_quartiles.sum[q];
      acc[kQuartileCount + q] = static_cast<double>(step_quartiles.count[q]);
    }
    acc[kNonfiniteGrad] = std::isfinite(grad_norm) ? 0 : 1;
    acc[kPreempt] = preemption.requested() ? 1 : 0;
    if (world > 1) r.comm->all_reduce_sum(stats);
    double loss_sum = 0;
    for (int q = 0; q < 4; ++q) {
      step_quartiles.sum[q] = acc[kQuartileSum + q];
      step_quartiles.count[q] = static_cast<int64_t>(acc[kQuartileCount + q]);
      loss_sum += acc[kQuartileSum + q];
    }
    const bool loss_finite = std::isfinite(loss_sum);
    const bool finite = loss_finite && acc[kNonfiniteGrad] == 0;
    const bool preempt = acc[kPreempt] > 0;

    r.scaler->update(finite);
    if (r.timestep_sampler && finite) {
      // Every rank's rows in rank order are the global batch in row order, so
      // every rank (and any world size) applies the same update.
      auto mine = torch::stack({torch::cat(step_levels), torch::cat(step_losses)}, 1);  // [share, 2]
      const auto all = world > 1 ? r.comm->all_gather(mine.contiguous()) : mine;
      r.timestep_sampler->update(all.select(1, 0), all.select(1, 1));
    }
    if (finite) {
      r.optimizer->apply(r.step);
      r.ema->update(*r.net, t.batch_size, r.images_seen);
      nonfinite_run = 0;
      grad_norm_sum += grad_norm;
      interval_good += 1;
      quartiles.merge(step_quartiles);
    } else {
      ++nonfinite_run;
      result.skipped_steps += 1;
      std::string what = loss_finite ? "gradients" : "loss";
      if (r.scaler->enabled())
        log_info("step ", r.step, ": non-finite ", what, " (fp16 overflow); step skipped, loss "
                 "scale now ", r.scaler->scale());
      else
        log_info("step ", r.step, ": non-finite ", what, "; step skipped (", nonfinite_run,
                 " in a row, training.nonfinite_patience=", t.nonfinite_patience, ")");
      if (nonfinite_run > t.nonfinite_patience) {
        auto bad = nonfinite_tensor_names(named_params);
        std::string names;
        for (size_t i = 0; i < bad.size() && i < 8; ++i) names += (i ? ", " : "") + bad[i];
        if (bad.size() > 8) names += ", ... (" + std::to_string(bad.size()) + " in all)";
        throw RunFailure(detail::concat(
            "training stopped at step ", r.step, " after ", nonfinite_run,
            " non-finite steps in a row (training.nonfinite_patience=", t.nonfinite_patience,
            "): ", loss_finite ? "the loss is finite" : "the loss is not finite",
            bad.empty() ? std::string("") : "; non-finite gradients in " + names,
            r.scaler->enabled() ? "; fp16 loss scale " + std::to_string(r.scaler->scale()) : "",
            ". Lower optim.lr, raise optim.warmup, use precision.dtype=bf16 or fp32, or check "
            "the data. The newest checkpoint (", r.last_checkpoint.empty() ? "none" : r.last_checkpoint,
            ") was written before this and is intact"));
      }
    }
    r.step += 1;
    r.images_seen += t.batch_size;
    interval_steps += 1;
    interval_images += t.batch_size;
    if (r.metrics)
      record_step_metrics(r, step_quartiles, grad_norm, finite, share, wait0, step_data_wait);

    const bool last = r.step == t.n_iters;
    if (r.step % t.log_freq == 0 || last) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - interval_start).count();
      if (r.metrics) r.metrics->record_throughput(static_cast<double>(interval_images) / world /
                                                 std::max(secs, 1e-9));
      if (run_log)
        log_interval(r, *run_log, result, quartiles, grad_norm_sum, interval_good, interval_steps,
                     data_wait, secs, interval_images);
      quartiles = QuartileStats{};
      grad_norm_sum = data_wait = 0;
      interval_steps = interval_good = interval_images = 0;
      interval_start = std::chrono::steady_clock::now();
    }
    if (c.dist.check_every > 0 && world > 1 && r.step % c.dist.check_every == 0)
      check_parameters_agree(r);
    const bool snapshot = r.step % t.snapshot_freq == 0 || last;
    if (snapshot || preempt || r.step % t.snapshot_freq_for_preemption == 0) save(r);
    if (preempt) {
      r.comm->barrier();  // rank 0's snapshot is complete before any rank exits
      preemption.done();
      throw Preempted(detail::concat(
          "preempted",
          preemption.signal() ? " by signal " + signal_name(preemption.signal())
                              : " (a signal reached another rank)",
          ": stopped at step ", r.step, " with snapshot ", r.last_checkpoint,
          "; run the same command to resume"));
    }
    if (snapshot && t.snapshot_sampling && r.ctx.is_main()) {
      quality = snapshot_samples(r);
      if (!quality.empty()) run_log->write({{"step", r.step}, {"quality", quality}});
    }
    if (c.eval.freq > 0 && r.step % c.eval.freq == 0) {
      const auto e0 = std::chrono::steady_clock::now();
      const auto report = evaluate_during_training(r);
      if (run_log) run_log->write({{"step", r.step}, {"eval", report}});
      if (r.metrics) r.metrics->record_eval(r.step, report);
      interval_start += std::chrono::steady_clock::now() - e0;  // not training time
    }
  }
  if (world > 1) r.comm->barrier();  // the final checkpoint is on disk for every rank

  if (quality.empty() && fs::exists(r.workdir / "eval" / "quality.json"))  // finished earlier
    quality = nlohmann::json::parse(std::ifstream(r.workdir / "eval" / "quality.json"));
  if (!quality.empty())
    log_info("quality at step ", quality["step"].get<int64_t>(),
             ": sliced Wasserstein distance of EMA samples to held-out data ",
             quality["swd"].get<double>(), " (floor: data vs data ",
             quality["swd_floor"].get<double>(), "; moment-matched Gaussian ",
             quality["swd_gaussian"].get<double>(), "; lower is better)");
  result.step = r.step;
  result.images_seen = r.images_seen;
  result.last_checkpoint = r.last_checkpoint;
  result.quality = quality;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  if (r.metrics) {  // a last scrape sees the final step; then the run leaves Prometheus's targets
    r.metrics->linger(c.monitor.linger_s);
    if (r.ctx.is_main() && !c.monitor.targets_file.empty())
      remove_scrape_targets(c.monitor.targets_file);
  }
  return result;
}

}  // namespace scorch
