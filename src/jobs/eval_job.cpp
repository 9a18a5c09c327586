// The set-up shared by `scorch stats` and `scorch eval` (see eval_job.h).
#include "jobs/eval_job.h"

#include <algorithm>

#include "core/config.h"
#include "core/log.h"
#include "dist/communicator.h"
#include "dist/context.h"
#include "eval/features.h"
#include "eval/model_eval.h"
#include "eval/reference_stats.h"

namespace scorch {

nlohmann::json compute_reference_stats(const Config& c, const std::string& data,
                                       const std::string& out, const ExtractOptions& options) {
  const DistContext ctx = make_context(c);
  auto comm = make_communicator(ctx, c.dist.backend, c.dist.timeout_s);
  auto extractor = load_feature_extractor(c.eval.feature_extractor, ctx.device);
  const auto f = extract_dataset(data, *extractor, *comm, options);
  ReferenceStats s{f.stats.mean(), f.stats.covariance(), f.count, extractor->identity(),
                   f.features};
  if (!ctx.is_main()) return {};
  save_reference_stats(out, s);
  log_info("statistics of ", f.count, " samples of ", data, " -> ", out, " (", f.seconds, " s, ",
           f.count / std::max(f.seconds, 1e-9), " images/s)");
  return {{"out", out},
          {"count", f.count},
          {"dim", f.stats.dim()},
          {"extractor", extractor->identity()},
          {"seconds", f.seconds}};
}

nlohmann::json run_evaluation(const EvalJob& job) {
  const Config& c = job.config;
  const ReferenceStats ref = load_reference_stats(job.reference);
  const DistContext ctx = make_context(c);
  auto comm = make_communicator(ctx, c.dist.backend, c.dist.timeout_s);
  auto extractor = load_feature_extractor(c.eval.feature_extractor, ctx.device);
  nlohmann::json report;
  if (job.model) {
    const auto& m = *job.model;
    ScoreNet net = m.net;  // the same module
    net->to(ctx.device);
    log_info("evaluating ", m.description, ": ", m.options.num, " samples with sampling.method=",
             c.sampling.method, " on ", ctx.world_size, ctx.world_size > 1 ? " ranks" : " rank");
    report = evaluate_model(c, m.sde, net, ctx.device, *extractor, ref, *comm, m.options);
    if (ctx.is_main()) {
      report["model"] = m.description;
      report["step"] = m.step;
      report["method"] = c.sampling.method;
      if (!m.options.out_dir.empty()) report["out"] = m.options.out_dir;
    }
  } else {
    auto o = job.extract;
    o.features = ref.features.defined();
    o.probabilities = true;
    const auto f = extract_dataset(job.samples, *extractor, *comm, o);
    if (ctx.is_main()) {
      report = score_against(f, ref, extractor->identity(), ScoreOptions{c.eval.is_splits});
      report["samples"] = job.samples;
      report["seconds"] = f.seconds;
      report["world_size"] = ctx.world_size;
    }
  }
  if (!ctx.is_main()) return {};
  report["reference"] = job.reference;
  log_info("FID ", report["fid"].dump(), ", IS ", report["inception_score"].dump(), ", KID ",
           report["kid"].dump(), " (", report["num_samples"].dump(), " samples)");
  return report;
}

}  // namespace scorch
