// scorch stats: reference statistics of a dataset; scorch eval: FID, IS, KID
// and precision/recall of a model's samples (drawn across the ranks of an MPI
// launch with per-sample noise) or of a sample dataset, against them. Both
// spread the feature extraction over the ranks.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_source.h"
#include "eval/reference_stats.h"
#include "core/config.h"
#include "core/log.h"
#include "dist/communicator.h"
#include "dist/context.h"
#include "eval/evaluate.h"
#include "eval/model_eval.h"

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

}  // namespace

void add_eval_commands(CLI::App& app, std::function<int()>& run) {
  auto stats_args = std::make_shared<EvalArgs>();
  auto* stats = app.add_subcommand("stats", "Reference statistics (mu, sigma) of a dataset for FID");
  stats->add_option("--data", stats_args->data, "dataset directory")->required();
  stats->add_option("--out", stats_args->out, "statistics file to write (.npz)")->required();
  stats->add_flag("--features", stats_args->features,
                  "also store the features (needed for KID and precision/recall)");
  add_common(stats, *stats_args);
  stats->callback([&run, stats_args] {
    run = [stats_args] {
      const auto& a = *stats_args;
      const Config c = eval_config(a);
      const DistContext ctx = make_context(c);
      auto comm = make_communicator(ctx, c.dist.timeout_s);
      auto extractor = load_feature_extractor(c.eval.feature_extractor, ctx.device);
      auto o = extract_options(c, a);
      o.features = a.features;
      const auto f = extract_dataset(a.data, *extractor, *comm, o);
      ReferenceStats s{f.stats.mean(), f.stats.covariance(), f.count, extractor->identity(),
                       f.features};
      if (ctx.is_main()) {
        save_reference_stats(a.out, s);
        log_info("statistics of ", f.count, " samples of ", a.data, " -> ", a.out, " (",
                 f.seconds, " s, ", f.count / std::max(f.seconds, 1e-9), " images/s)");
        if (a.json)
          std::cout << nlohmann::json{{"out", a.out}, {"count", f.count},
                                      {"dim", f.stats.dim()}, {"extractor", extractor->identity()},
                                      {"seconds", f.seconds}}
                           .dump()
                    << std::endl;
      }
      return kExitOk;
    };
  });

  auto eval_args = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand(
      "eval", "FID, Inception Score, KID and precision/recall of a model's samples (--workdir, "
              "--checkpoint, --score-sde-checkpoint) or of a sample dataset (--samples)");
  eval->add_option("--samples", eval_args->samples, "score this sample dataset directory");
  add_model_source_options(*eval, eval_args->model);
  eval->add_option("--ref", eval_args->ref, "reference statistics (.npz from scorch stats, "
                                            "pytorch-fid or EDM); default eval.reference");
  eval->add_option("--num", eval_args->num, "samples to draw (default eval.num_samples, 50000)");
  eval->add_option("--seed", eval_args->seed, "seed of the per-sample noise (default: seed)");
  eval->add_option("--out", eval_args->out, "also write the drawn samples as a dataset here");
  eval->add_flag("--overwrite", eval_args->overwrite, "replace an existing dataset at --out");
  eval->add_option("--report", eval_args->report, "also write the JSON report to this file");
  eval->add_option("--extractor", eval_args->extractor,
                   "feature extractor: TorchScript file or classifier checkpoint "
                   "(default eval.feature_extractor)");
  eval->add_option("--limit", eval_args->limit, "--samples: use only the first N samples (0: all)");
  eval->add_option("--batch", eval_args->batch,
                   "images per sampler and extractor call (default sampling.batch_size for "
                   "models, eval.batch_size for --samples)");
  eval->add_flag("--json", eval_args->json, "print the result as one JSON object on stdout");
  eval->callback([&run, eval_args] {
    run = [eval_args] {
      const auto& a = *eval_args;
      const bool from_model = !a.model.workdir.empty() || !a.model.checkpoint.empty() ||
                              !a.model.score_sde_checkpoint.empty() ||
                              !a.model.guided_diffusion_checkpoint.empty();
      SCORCH_CHECK(from_model != !a.samples.empty(),
                   "scorch eval scores either a model (--workdir W, --checkpoint FILE, or "
                   "--score-sde-checkpoint / --guided-diffusion-checkpoint FILE with --config C) "
                   "or a sample dataset (--samples DIR); give exactly one");
      std::optional<LoadedModel> model;
      Config c;
      if (from_model) {
        model.emplace(load_model(a.model));
        c = model->config;
      } else {
        c = a.model.config.empty() ? parse_config("{}", "command line", a.model.overrides)
                                   : load_config(a.model.config, a.model.overrides);
      }
      if (!a.extractor.empty()) c.eval.feature_extractor = a.extractor;
      SCORCH_CHECK(!c.eval.feature_extractor.empty(),
                   "no feature extractor: give --extractor FILE (or eval.feature_extractor=FILE): "
                   "a TorchScript file such as StyleGAN2-ADA's inception-2015-12-05.pt, or a "
                   "classifier from `scorch classifier`");
      const std::string ref_path = !a.ref.empty() ? a.ref : c.eval.reference;
      SCORCH_CHECK(!ref_path.empty(), "no reference statistics: give --ref STATS.npz (or "
                                      "eval.reference=FILE), made by `scorch stats`");
      const ReferenceStats ref = load_reference_stats(ref_path);
      const DistContext ctx = make_context(c);
      auto comm = make_communicator(ctx, c.dist.timeout_s);
      auto extractor = load_feature_extractor(c.eval.feature_extractor, ctx.device);
      nlohmann::json report;
      if (from_model) {
        SampleEvalOptions o;
        o.num = a.num > 0 ? a.num : c.eval.num_samples;
        o.batch_size = a.batch > 0 ? a.batch : c.sampling.batch_size;
        o.seed = a.seed >= 0 ? static_cast<uint64_t>(a.seed) : c.seed;
        o.out_dir = a.out;
        o.overwrite = a.overwrite;
        model->net->to(ctx.device);
        log_info("evaluating ", model->description, ": ", o.num, " samples with sampling.method=",
                 c.sampling.method, " on ", ctx.world_size, ctx.world_size > 1 ? " ranks" : " rank");
        report = evaluate_model(c, model->sde, model->net, ctx.device, *extractor, ref, *comm, o);
        if (ctx.is_main()) {
          report["model"] = model->description;
          report["step"] = model->step;
          report["method"] = c.sampling.method;
          if (!a.out.empty()) report["out"] = a.out;
        }
      } else {
        auto o = extract_options(c, a);
        o.features = ref.features.defined();
        o.probabilities = true;
        const auto f = extract_dataset(a.samples, *extractor, *comm, o);
        if (ctx.is_main()) {
          report = score_against(f, ref, extractor->identity(), ScoreOptions{c.eval.is_splits});
          report["samples"] = a.samples;
          report["seconds"] = f.seconds;
          report["world_size"] = ctx.world_size;
        }
      }
      if (ctx.is_main()) {
        report["reference"] = ref_path;
        log_info("FID ", report["fid"].dump(), ", IS ", report["inception_score"].dump(),
                 ", KID ", report["kid"].dump(), " (", report["num_samples"].dump(), " samples)");
        if (!a.report.empty()) {
          std::ofstream out(a.report);
          SCORCH_CHECK(out.good(), "--report '", a.report, "' cannot be written");
          out << report.dump(2) << "\n";
        }
        if (a.json) std::cout << report.dump() << std::endl;
      }
      return kExitOk;
    };
  });
}

}  // namespace scorch::cli
