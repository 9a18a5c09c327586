// The after-step work that samples the model during training: EMA sample
// snapshots (training.snapshot_freq) through the same sampler dispatch as
// `scorch sample` (sampling/sampler.h), and FID/IS/KID at eval.freq through
// the same path as `scorch eval --workdir` (eval/model_eval.h).
#include <algorithm>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/image.h"
#include "core/log.h"
#include "core/rng.h"
#include "eval/model_eval.h"
#include "eval/toy_quality.h"
#include "nn/score_model.h"
#include "sampling/conditional.h"
#include "sampling/sampler.h"
#include "train/run.h"

namespace scorch {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kSampleStream = 0x5A3E;
constexpr uint64_t kRankStride = 0x10000;  // rank r samples from stream kSampleStream + r·stride

// Swaps the first EMA's weights into the network (eval mode) for the scope.
class EmaWeightsScope {
 public:
  explicit EmaWeightsScope(Run& r) : r_(r) {
    r_.ema->store(*r_.net);
    r_.ema->copy_to(*r_.net, r_.ema->default_name());
    r_.net->eval();
  }
  ~EmaWeightsScope() {
    r_.net->train();
    r_.ema->restore(*r_.net);
  }
  EmaWeightsScope(const EmaWeightsScope&) = delete;
  EmaWeightsScope& operator=(const EmaWeightsScope&) = delete;

 private:
  Run& r_;
};

// This rank's share of n samples (ranks take ceil(n / W) each, in rank
// order) in sampling.batch_size batches from its own noise stream, gathered
// on every rank in rank order, on the CPU; `nfe` gets the score evaluations
// per sample. Rank 0's stream is the one a single process draws from.
torch::Tensor draw_samples(Run& r, int64_t n, int64_t& nfe) {
  const auto& c = r.config;
  const int64_t world = r.ctx.world_size, share = (n + world - 1) / world;
  const int64_t count = std::clamp<int64_t>(n - r.ctx.rank * share, 0, share);
  std::vector<int64_t> shape{share};
  for (int64_t d : sample_shape(c)) shape.push_back(d);
  seed_streams(c.seed, kSampleStream + static_cast<uint64_t>(r.ctx.rank) * kRankStride, r.step);
  const auto score = make_score_fn(r.net, r.sde, c.training.continuous);
  const auto denoiser = make_precond_denoiser(r.net);
  const auto options = torch::TensorOptions().device(r.ctx.device);
  torch::Tensor mine = torch::zeros(shape);  // padded to `share` rows for the gather
  for (int64_t done = 0; done < count;) {
    const int64_t b = std::min(c.sampling.batch_size, count - done);
    shape[0] = b;
    const SampleResult part = sample_from_config(c, *r.sde, score, shape, options, {}, denoiser);
    nfe = part.nfe;
    mine.narrow(0, done, b).copy_(part.x);
    done += b;
  }
  return r.comm->all_gather(mine).narrow(0, 0, n);
}

}  // namespace

nlohmann::json snapshot_samples(Run& r) {
  const auto& c = r.config;
  const int64_t n = c.training.snapshot_num_samples > 0 ? c.training.snapshot_num_samples
                    : is_image_data(c)                  ? 64
                                                        : c.sampling.batch_size;
  torch::Tensor x;
  int64_t nfe = 0;
  {
    EmaWeightsScope ema(r);
    x = draw_samples(r, n, nfe);
  }
  if (!r.ctx.is_main()) return {};  // rank 0 writes
  const auto dir = r.workdir / "samples" / ("iter_" + step_name(r.step));
  fs::create_directories(dir);

  nlohmann::json quality;
  if (is_image_data(c)) {
    auto images = inverse_scale_data(x, c.data.centered).clamp(0, 1);
    write_png((dir / "samples.png").string(),
              image_grid(images.narrow(0, 0, std::min<int64_t>(n, 64))));
  } else if (!is_toy_data(c)) {  // vectors from a dataset: a plot of 2-D ones
    if (x.size(1) == 2) write_png((dir / "samples.png").string(), scatter_plot(x));
  } else {
    const auto q = toy_quality(c, x);
    quality = to_json(q);
    quality["step"] = r.step;
    // EMA samples in blue over held-out data in grey.
    write_png((dir / "samples.png").string(), scatter_plot(x, toy_held_out(c, n)));
    write_file_atomic((dir / "quality.json").string(), quality.dump(2) + "\n");
    write_file_atomic((r.workdir / "eval" / "quality.json").string(), quality.dump(2) + "\n");
  }
  log_info("snapshot at step ", r.step, ": ", dir.string(), " (", n, " samples, sampling.method=",
           c.sampling.method, ", NFE ", nfe, ")",
           quality.empty() ? "" : " swd=" + std::to_string(quality["swd"].get<double>()));
  return quality;
}

// Drawn on every rank with per-sample noise: the same images at every
// evaluation and on any number of ranks, so the curve shows the model, not
// the noise. Rank 0 writes the report to eval/ (the caller logs it).
nlohmann::json evaluate_during_training(Run& r) {
  const auto& c = r.config;
  torch::NoGradGuard no_grad;
  SampleEvalOptions o;
  o.num = c.eval.freq_num_samples;
  o.batch_size = c.sampling.batch_size;
  o.seed = c.seed;
  o.progress = false;
  nlohmann::json report;
  {
    EmaWeightsScope ema(r);
    report = evaluate_model(c, r.sde, r.net, r.ctx.device, *r.extractor, *r.reference, *r.comm, o);
  }
  if (!r.ctx.is_main()) return report;
  report["step"] = r.step;
  report["ema"] = r.ema->default_name();
  write_file_atomic((r.workdir / "eval" / ("eval_" + step_name(r.step) + ".json")).string(),
                    report.dump(2) + "\n");
  log_info("eval at step ", r.step, ": FID ", report["fid"].dump(), ", IS ",
           report["inception_score"].dump(), ", KID ", report["kid"].dump(), " (", o.num,
           " EMA samples, ", report["seconds"].get<double>(), " s)");
  return report;
}

}  // namespace scorch
