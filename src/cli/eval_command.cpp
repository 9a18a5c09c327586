// scorch stats: reference statistics of a dataset; scorch eval: FID, IS, KID
// and precision/recall of a model's samples (drawn across the ranks of an MPI
// launch with per-sample noise) or of a sample dataset, against them. Both
// spread the feature extraction over the ranks.
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "jobs/model_source.h"
#include "core/atomic_file.h"
#include "core/config.h"
#include "core/error.h"
#include "jobs/eval_job.h"

namespace scorch::cli {
namespace {

struct EvalArgs {
  std::string data, out, samples, ref, extractor, report;
  std::vector<std::string> overrides;
  ModelSourceArgs model;  // scorch eval: the model, or --config / overrides for --samples
  int64_t limit = 0, batch = 0, num = 0, seed = -1;
  bool features = false, json = false, overwrite = false;
};

// The config for these commands: defaults plus overrides (dist.*, eval.*),
// with --extractor standing for eval.feature_extractor.
Config eval_config(const EvalArgs& a) {
  Config c = parse_config("{}", "command line", a.overrides);
  if (!a.extractor.empty()) c.eval.feature_extractor = a.extractor;
  SCORCH_CHECK(!c.eval.feature_extractor.empty(),
               "no feature extractor: give --extractor FILE (or eval.feature_extractor=FILE), a "
               "TorchScript file such as StyleGAN2-ADA's inception-2015-12-05.pt");
  return c;
}

void add_common(CLI::App* cmd, EvalArgs& a) {
  cmd->add_option("--extractor", a.extractor,
                  "TorchScript feature extractor (eval.feature_extractor)");
  cmd->add_option("--limit", a.limit, "use only the first N samples (0: all)");
  cmd->add_option("--batch", a.batch, "images per extractor call (default eval.batch_size)");
  cmd->add_flag("--json", a.json, "print the result as one JSON object on stdout");
  cmd->add_option("overrides", a.overrides, "config overrides key.path=value (dist.*, eval.*)");
}

ExtractOptions extract_options(const Config& c, const EvalArgs& a) {
  ExtractOptions o;
  o.batch_size = a.batch > 0 ? a.batch : c.eval.batch_size;
  o.limit = a.limit;
  return o;
}

// scorch eval: the model (--workdir, --checkpoint, imports) or --samples,
// scored against --ref.
EvalJob eval_job(const EvalArgs& a) {
  const bool from_model = !a.model.workdir.empty() || !a.model.checkpoint.empty() ||
                          !a.model.score_sde_checkpoint.empty() ||
                          !a.model.guided_diffusion_checkpoint.empty();
  SCORCH_CHECK(from_model != !a.samples.empty(),
               "scorch eval scores either a model (--workdir W, --checkpoint FILE, or "
               "--score-sde-checkpoint / --guided-diffusion-checkpoint FILE with --config C) "
               "or a sample dataset (--samples DIR); give exactly one");
  EvalJob job;
  std::optional<LoadedModel> model;
  if (from_model) {
    model.emplace(load_model(a.model));
    job.config = model->config;
  } else {
    job.config = a.model.config.empty() ? parse_config("{}", "command line", a.model.overrides)
                                        : load_config(a.model.config, a.model.overrides);
  }
  Config& c = job.config;
  if (!a.extractor.empty()) c.eval.feature_extractor = a.extractor;
  SCORCH_CHECK(!c.eval.feature_extractor.empty(),
               "no feature extractor: give --extractor FILE (or eval.feature_extractor=FILE): "
               "a TorchScript file such as StyleGAN2-ADA's inception-2015-12-05.pt, or a "
               "classifier from `scorch classifier`");
  job.reference = !a.ref.empty() ? a.ref : c.eval.reference;
  SCORCH_CHECK(!job.reference.empty(), "no reference statistics: give --ref STATS.npz (or "
                                       "eval.reference=FILE), made by `scorch stats`");
  if (model) {
    SampleEvalOptions o;
    o.num = a.num > 0 ? a.num : c.eval.num_samples;
    o.batch_size = a.batch > 0 ? a.batch : c.sampling.batch_size;
    o.seed = a.seed >= 0 ? static_cast<uint64_t>(a.seed) : c.seed;
    o.out_dir = a.out;
    o.overwrite = a.overwrite;
    job.model = EvalJob::Model{model->sde, model->net, model->description, model->step, o};
  } else {
    job.samples = a.samples;
    job.extract = extract_options(c, a);
  }
  return job;
}

}  // namespace

void add_stats_command(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<EvalArgs>();
  auto* stats = app.add_subcommand("stats", "Reference statistics (mu, sigma) of a dataset for FID");
  stats->add_option("--data", args->data, "dataset directory")->required();
  stats->add_option("--out", args->out, "statistics file to write (.npz)")->required();
  stats->add_flag("--features", args->features,
                  "also store the features (needed for KID and precision/recall)");
  add_common(stats, *args);
  stats->callback([&run, args] {
    run = [args] {
      const Config c = eval_config(*args);
      auto o = extract_options(c, *args);
      o.features = args->features;
      const auto summary = compute_reference_stats(c, args->data, args->out, o);
      if (args->json && !summary.empty()) std::cout << summary.dump() << std::endl;
      return kExitOk;
    };
  });
}

void add_eval_command(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand(
      "eval", "FID, Inception Score, KID and precision/recall of a model's samples (--workdir, "
              "--checkpoint, --score-sde-checkpoint) or of a sample dataset (--samples)");
  eval->add_option("--samples", args->samples, "score this sample dataset directory");
  add_model_source_options(*eval, args->model);
  eval->add_option("--ref", args->ref, "reference statistics (.npz from scorch stats, "
                                       "pytorch-fid or EDM); default eval.reference");
  eval->add_option("--num", args->num, "samples to draw (default eval.num_samples, 50000)");
  eval->add_option("--seed", args->seed, "seed of the per-sample noise (default: seed)");
  eval->add_option("--out", args->out, "also write the drawn samples as a dataset here");
  eval->add_flag("--overwrite", args->overwrite, "replace an existing dataset at --out");
  eval->add_option("--report", args->report, "also write the JSON report to this file");
  eval->add_option("--extractor", args->extractor,
                   "feature extractor: TorchScript file or classifier checkpoint "
                   "(default eval.feature_extractor)");
  eval->add_option("--limit", args->limit, "--samples: use only the first N samples (0: all)");
  eval->add_option("--batch", args->batch,
                   "images per sampler and extractor call (default sampling.batch_size for "
                   "models, eval.batch_size for --samples)");
  eval->add_flag("--json", args->json, "print the result as one JSON object on stdout");
  eval->callback([&run, args] {
    run = [args] {
      const auto report = run_evaluation(eval_job(*args));
      if (report.empty()) return kExitOk;  // not rank 0
      if (!args->report.empty()) write_file_atomic(args->report, report.dump(2) + "\n");
      if (args->json) std::cout << report.dump() << std::endl;
      return kExitOk;
    };
  });
}

}  // namespace scorch::cli
