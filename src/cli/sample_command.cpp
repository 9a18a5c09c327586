// scorch sample: N samples from a trained model (EMA weights by default) or
// an analytic score, written as a dataset in the sharded format plus a PNG
// preview, optionally conditioned (jobs/sample_dataset.h). --json reports NFE
// and samples/s.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "jobs/model_source.h"
#include "core/log.h"
#include "jobs/sample_dataset.h"

namespace scorch::cli {
namespace {

struct SampleArgs {
  ModelSourceArgs model;
  SampleRequest request;
  std::string out, grid;
  int64_t num = 0, batch = 0;
  int64_t seed = -1;
  bool json = false, overwrite = false, no_progress = false;
  std::string inpaint, colorize, super_resolve, interpolate;
};

void add_condition_options(CLI::App& cmd, SampleArgs& a) {
  cmd.add_option("--class", a.request.class_label,
                 "class-conditional: this class for every sample, or -1 to cycle through them");
  cmd.add_option("--guidance", a.request.guidance,
                 "classifier-free guidance weight w: (1+w) s(x|y) - w s(x) (needs --class)")
      ->capture_default_str();
  cmd.add_option("--inpaint", a.inpaint,
                 "dataset whose images condition inpainting (the --mask region is kept)");
  cmd.add_option("--mask", a.request.mask,
                 "inpainting: known region left|right|top|bottom|outside_center")
      ->capture_default_str();
  cmd.add_option("--colorize", a.colorize, "dataset whose images' gray values are colorized");
  cmd.add_option("--super-resolve", a.super_resolve,
                 "dataset of low-resolution images to upsample by --factor");
  cmd.add_option("--factor", a.request.factor, "super-resolution factor")->capture_default_str();
  cmd.add_option("--interpolate", a.interpolate,
                 "dataset of images: encode pairs (0,1), (2,3), ... to latents with the "
                 "probability-flow ODE and decode --steps points of the slerp between them");
  cmd.add_option("--steps", a.request.interpolation_steps,
                 "interpolation: frames per pair, ends included")
      ->capture_default_str();
}

// The flags as a request for the model's config.
SampleRequest make_request(const SampleArgs& a, const Config& c) {
  SampleRequest q = a.request;
  const int conditions = !a.inpaint.empty() + !a.colorize.empty() + !a.super_resolve.empty() +
                         !a.interpolate.empty();
  SCORCH_CHECK(conditions <= 1,
               "--inpaint, --colorize, --super-resolve and --interpolate exclude each other");
  const std::pair<const std::string*, SampleCondition> flags[] = {
      {&a.inpaint, SampleCondition::kInpaint},
      {&a.colorize, SampleCondition::kColorize},
      {&a.super_resolve, SampleCondition::kSuperResolve},
      {&a.interpolate, SampleCondition::kInterpolate}};
  for (const auto& [dir, condition] : flags)
    if (!dir->empty()) q.condition = condition, q.condition_data = *dir;
  q.generate.num = a.num;
  q.generate.batch_size = a.batch > 0 ? a.batch : c.sampling.batch_size;
  q.generate.seed = a.seed >= 0 ? static_cast<uint64_t>(a.seed) : c.seed;
  q.generate.out_dir = a.out;
  q.generate.overwrite = a.overwrite;
  q.generate.progress = !a.no_progress;
  q.generate.grid = a.grid;
  return q;
}

int run_sample(const SampleArgs& a) {
  SCORCH_CHECK(!a.model.workdir.empty() || !a.model.checkpoint.empty() || !a.model.config.empty(),
               "scorch sample needs --workdir W, --checkpoint FILE, or --config C "
               "(model.name=analytic)");
  LoadedModel m = load_model(a.model);
  const auto& c = m.config;
  log_info("sampling ", a.num, " from ", m.description, " with sampling.method=",
           c.sampling.method, " (", c.sampling.predictor, " + ", c.sampling.corrector, ")");
  const auto result = sample_dataset(c, m.sde, m.net, m.device, make_request(a, c));
  log_info("wrote ", result.manifest.num_samples, " samples to ", a.out, " (NFE ", result.nfe,
           ", ", result.samples_per_s, " samples/s); preview ", result.grid);
  if (a.json)
    std::cout << nlohmann::json{{"num_samples", result.manifest.num_samples},
                                {"out", a.out},
                                {"grid", result.grid},
                                {"nfe", result.nfe},
                                {"samples_per_s", result.samples_per_s},
                                {"seconds", result.seconds},
                                {"step", m.step},
                                {"model", m.description},
                                {"method", c.sampling.method}}
                     .dump()
              << std::endl;
  return kExitOk;
}

}  // namespace

void add_sample_command(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<SampleArgs>();
  auto* cmd = app.add_subcommand(
      "sample", "Draw samples from a trained model (or model.name=analytic) into a dataset");
  add_model_source_options(*cmd, args->model);
  cmd->add_option("--num", args->num, "number of samples")->required();
  cmd->add_option("--out", args->out, "dataset directory to write (must not exist)")->required();
  cmd->add_option("--seed", args->seed, "seed (default: the config's seed)");
  cmd->add_option("--batch", args->batch, "samples per sampler call (default sampling.batch_size)");
  cmd->add_option("--grid", args->grid, "preview PNG (default: <out>.png beside the dataset)");
  cmd->add_flag("--overwrite", args->overwrite, "replace an existing sample dataset at --out");
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar");
  cmd->add_flag("--json", args->json, "print the result as one JSON object on stdout");
  add_condition_options(*cmd, *args);
  cmd->callback([&run, args] { run = [args] { return run_sample(*args); }; });
}

}  // namespace scorch::cli
