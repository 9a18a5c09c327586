// scorch stats: reference statistics of a dataset; scorch eval --samples:
// FID, IS, KID and precision/recall of a sample dataset against them. Both
// spread the feature extraction over the ranks of an MPI launch.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/reference_stats.h"
#include "core/config.h"
#include "core/log.h"
#include "dist/communicator.h"
#include "dist/context.h"
#include "eval/evaluate.h"

namespace scorch::cli {
namespace {

struct EvalArgs {
  std::string data, out, samples, ref, extractor, report;
  std::vector<std::string> overrides;
  int64_t limit = 0, batch = 0;
  bool features = false, json = false;
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
      "eval", "FID, Inception Score, KID and precision/recall of a sample dataset");
  eval->add_option("--samples", eval_args->samples, "sample dataset directory")->required();
  eval->add_option("--ref", eval_args->ref, "reference statistics (.npz from scorch stats, "
                                            "pytorch-fid or EDM)")
      ->required();
  eval->add_option("--report", eval_args->report, "also write the JSON report to this file");
  add_common(eval, *eval_args);
  eval->callback([&run, eval_args] {
    run = [eval_args] {
      const auto& a = *eval_args;
      const Config c = eval_config(a);
      const ReferenceStats ref = load_reference_stats(a.ref);
      const DistContext ctx = make_context(c);
      auto comm = make_communicator(ctx, c.dist.timeout_s);
      auto extractor = load_feature_extractor(c.eval.feature_extractor, ctx.device);
      auto o = extract_options(c, a);
      o.features = ref.features.defined();
      o.probabilities = true;
      const auto f = extract_dataset(a.samples, *extractor, *comm, o);
      if (ctx.is_main()) {
        auto report = score_against(f, ref, extractor->identity());
        report["samples"] = a.samples;
        report["reference"] = a.ref;
        report["seconds"] = f.seconds;
        log_info("FID ", report["fid"].dump(), ", IS ", report["inception_score"].dump(),
                 ", KID ", report["kid"].dump(), " (", f.count, " samples)");
        if (!a.report.empty()) std::ofstream(a.report) << report.dump(2) << "\n";
        if (a.json) std::cout << report.dump() << std::endl;
      }
      return kExitOk;
    };
  });
}

}  // namespace scorch::cli
