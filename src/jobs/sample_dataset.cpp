// Conditional and unconditional sample datasets (see sample_dataset.h): the
// checks of a request against the model and the conditioning dataset, the
// batch sampler, and the loop that draws its batches into a dataset.
#include "jobs/sample_dataset.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>

#include "core/config.h"
#include "core/error.h"
#include "core/image.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/shard_writer.h"
#include "data/sharded_dataset.h"
#include "data/source.h"
#include "eval/generate.h"
#include "likelihood/probability_flow.h"
#include "nn/score_model.h"
#include "sampling/conditional.h"
#include "sampling/sampler.h"

namespace scorch {
namespace {

// The stream of batch b: seed_streams(seed, kGenerateStream, b).
constexpr uint64_t kGenerateStream = 0x6E4E;

void check_request(const Config& c, const SampleRequest& q) {
  SCORCH_CHECK(q.guidance == 0 || q.class_label != -2, "--guidance needs --class");
  if (q.class_label != -2)
    SCORCH_CHECK(c.data.num_classes > 0 && q.class_label < c.data.num_classes, "--class ",
                 q.class_label, " needs a class-conditional model with ",
                 "data.num_classes > ", q.class_label, " (data.num_classes=", c.data.num_classes,
                 ")");
  if (q.condition != SampleCondition::kNone && q.condition != SampleCondition::kInterpolate)
    SCORCH_CHECK(is_image_data(c) && c.sampling.method == SamplingMethod::kPc,
                 "--inpaint, --colorize and --super-resolve work on images with "
                 "sampling.method=pc");
  if (q.condition == SampleCondition::kInterpolate)
    SCORCH_CHECK(q.interpolation_steps >= 2 && q.generate.num % q.interpolation_steps == 0,
                 "--interpolate writes --steps frames per pair: --num (", q.generate.num,
                 ") must be a multiple of --steps (", q.interpolation_steps, " >= 2)");
}

// The conditioning dataset, checked against the model and the request.
std::unique_ptr<ShardedDataset> open_condition(const Config& c, const SampleRequest& q) {
  const bool interpolate = q.condition == SampleCondition::kInterpolate;
  const auto& dir = q.condition_data;
  auto cond = std::make_unique<ShardedDataset>(dir);
  const auto& manifest = cond->manifest();
  SCORCH_CHECK(manifest.kind == SampleKind::kImages || interpolate, "'", dir,
               "' must hold images");
  const int64_t needed = interpolate ? 2 * (q.generate.num / q.interpolation_steps) : q.generate.num;
  SCORCH_CHECK(cond->size() >= needed, "'", dir, "' holds ", cond->size(), " samples; this needs ",
               needed);
  const bool super_resolve = q.condition == SampleCondition::kSuperResolve;
  const bool colorize = q.condition == SampleCondition::kColorize;
  const int64_t want = super_resolve ? c.data.image_size / q.factor : c.data.image_size;
  const auto& sh = manifest.sample_shape;
  const bool vectors = manifest.kind == SampleKind::kVectors;
  SCORCH_CHECK(!vectors || (!is_image_data(c) && sh[0] == c.data.dim), "'", dir, "' holds ",
               manifest.describe(), ", which the model does not take");
  SCORCH_CHECK(!super_resolve || c.data.image_size % q.factor == 0, "--factor ", q.factor,
               " must divide data.image_size=", c.data.image_size);
  SCORCH_CHECK(vectors || (sh[0] == want && sh[1] == want &&
                           (colorize || sh[2] == c.data.num_channels)),
               "'", dir, "' holds ", manifest.describe(), "; this needs ", want, "x", want,
               " images", colorize ? "" : " with data.num_channels");
  SCORCH_CHECK(!colorize || c.data.num_channels == 3,
               "--colorize needs an RGB model (data.num_channels=3)");
  return cond;
}

// Draws the batches in order; `offset` is the index of the next sample (for
// labels and conditions).
class RequestSampler {
 public:
  RequestSampler(const Config& c, std::shared_ptr<const Sde> sde, ScoreNet net,
                 const torch::Device& device, const SampleRequest& q)
      : c_(c), sde_(std::move(sde)), net_(std::move(net)), device_(device), q_(q) {
    if (q.condition != SampleCondition::kNone) cond_ = open_condition(c, q);
  }

  SampleResult operator()(int64_t n) {
    const ScoreFn score = score_for(n);
    SampleResult r = q_.condition == SampleCondition::kInterpolate ? interpolate_pairs(score, n)
                                                                    : draw(score, n);
    offset_ += n;
    return r;
  }

 private:
  ScoreFn score_for(int64_t n) const {
    if (q_.class_label == -2) return make_score_fn(net_, sde_, c_.training.continuous);
    return make_guided_score_fn(net_, sde_, c_.training.continuous, labels_for(n),
                                c_.data.num_classes, q_.guidance);
  }

  // model.precond: the network's own denoiser, guided alike (empty otherwise).
  Denoiser denoiser_for(int64_t n) const {
    if (q_.class_label == -2) return make_precond_denoiser(net_);
    return make_precond_denoiser(net_, labels_for(n), c_.data.num_classes, q_.guidance);
  }

  torch::Tensor labels_for(int64_t n) const {
    auto labels = q_.class_label >= 0 ? torch::full({n}, q_.class_label, torch::kLong)
                                      : (torch::arange(offset_, offset_ + n) % c_.data.num_classes);
    return labels.to(device_);
  }

  // n / steps pairs of the dataset, steps frames each (NFE not counted).
  SampleResult interpolate_pairs(const ScoreFn& score, int64_t n) const {
    FlowOptions flow;
    flow.eps = sampling_eps(c_);
    std::vector<torch::Tensor> frames;
    const int64_t steps = q_.interpolation_steps, first_pair = offset_ / steps;
    for (int64_t p = first_pair; p < first_pair + n / steps; ++p) {
      auto pair = cond_->read_range(2 * p, 2);
      auto x = cond_->manifest().kind == SampleKind::kVectors
                   ? pair
                   : stored_to_model(pair, c_.data.centered);
      x = x.to(device_);
      frames.push_back(interpolate(*sde_, score, x[0], x[1], steps, flow));
    }
    return SampleResult{torch::cat(frames), 0};
  }

  SampleResult draw(const ScoreFn& score, int64_t n) const {
    torch::Tensor y;  // the condition, model space, [n, C, h, w]
    if (cond_) y = stored_to_model(cond_->read_range(offset_, n), c_.data.centered).to(device_);
    const auto pc = pc_options_from_config(c_.sampling, sampling_eps(c_),
                                           sampling_steps(c_, SamplingMethod::kPc));
    switch (q_.condition) {
      case SampleCondition::kInpaint:
        return pc_inpaint(*sde_, score, y,
                          inpaint_mask(q_.mask, c_.data.image_size, c_.data.image_size).to(device_),
                          pc);
      case SampleCondition::kColorize:
        return pc_colorize(*sde_, score, y, pc);
      case SampleCondition::kSuperResolve:
        return pc_super_resolve(*sde_, score, y, q_.factor, pc);
      default: {
        std::vector<int64_t> shape{n};
        for (int64_t d : sample_shape(c_)) shape.push_back(d);
        return sample_from_config(c_, *sde_, score, shape, torch::TensorOptions().device(device_),
                                  {}, denoiser_for(n));
      }
    }
  }

  const Config& c_;
  std::shared_ptr<const Sde> sde_;
  ScoreNet net_;
  torch::Device device_;
  const SampleRequest& q_;
  std::unique_ptr<ShardedDataset> cond_;
  int64_t offset_ = 0;
};

// Draws the batches in order and writes them, then the preview.
GenerateResult write_samples(const Config& c, RequestSampler& sampler, const GenerateOptions& o) {
  SCORCH_CHECK(o.num > 0, "--num must be positive, got ", o.num);
  SCORCH_CHECK(o.batch_size > 0, "the sampling batch size must be positive, got ", o.batch_size);
  const auto t0 = std::chrono::steady_clock::now();
  const bool images = is_image_data(c);
  ShardWriter writer(o.out_dir, sample_writer_options(c, "scorch sample, seed " +
                                                             std::to_string(o.seed),
                                                         o.overwrite));  // checks --out first

  GenerateResult result;
  torch::Tensor preview;
  std::optional<ProgressBar> bar;
  if (o.progress) bar.emplace("sampling", o.num);
  for (int64_t b = 0, done = 0; done < o.num; ++b) {
    const int64_t n = std::min(o.batch_size, o.num - done);
    seed_streams(o.seed, kGenerateStream, static_cast<uint64_t>(b));
    auto s = sampler(n);
    result.nfe = s.nfe;
    auto stored = to_storage(c, s.x);
    writer.add_batch(stored);
    if (!preview.defined()) preview = images ? stored.narrow(0, 0, std::min<int64_t>(n, 64))
                                             : stored.narrow(0, 0, std::min<int64_t>(n, 5000));
    done += n;
    if (bar) bar->add(n);
  }
  if (bar) bar->finish();
  result.manifest = writer.finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.samples_per_s = o.num / std::max(result.seconds, 1e-9);

  namespace fs = std::filesystem;
  result.grid = o.grid;
  if (result.grid.empty()) {
    const auto out = fs::path(o.out_dir).lexically_normal();
    const auto name = out.filename().empty() ? out.parent_path().filename() : out.filename();
    result.grid = (out.parent_path() / (name.string() + ".png")).string();
  }
  if (images)
    write_png(result.grid, image_grid(stored_to_unit(preview)));
  else if (c.data.dim == 2)
    write_png(result.grid, scatter_plot(preview));
  else
    result.grid.clear();
  return result;
}

}  // namespace

GenerateResult sample_dataset(const Config& config, std::shared_ptr<const Sde> sde, ScoreNet net,
                              const torch::Device& device, const SampleRequest& request) {
  check_request(config, request);
  GenerateOptions o = request.generate;
  if (request.condition == SampleCondition::kInterpolate)  // whole pairs per batch
    o.batch_size = request.interpolation_steps *
                   std::max<int64_t>(1, o.batch_size / request.interpolation_steps);
  RequestSampler sampler(config, std::move(sde), std::move(net), device, request);
  torch::NoGradGuard no_grad;
  return write_samples(config, sampler, o);
}

}  // namespace scorch
