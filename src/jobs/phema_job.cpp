// Post-hoc EMA reconstruction and its evaluation (see phema_job.h).
#include "jobs/phema_job.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "dist/context.h"
#include "jobs/eval_job.h"
#include "nn/model_factory.h"
#include "sde/sde.h"
#include "train/checkpoint.h"
#include "train/ema.h"
#include "train/phema.h"

namespace scorch {
namespace {

namespace fs = std::filesystem;

// The snapshots of the workdir, or an error saying how to get them.
std::vector<PhemaSnapshotFile> snapshots_of(const PhemaJob& a) {
  SCORCH_CHECK(fs::is_directory(a.workdir), "--workdir '", a.workdir, "' is not a directory");
  const auto dir = (fs::path(a.workdir) / "phema").string();
  const std::string how =
      "train with model.phema_std=[0.05,0.1] and "
      "training.phema_snapshot_kimg=N (thousands of images between snapshots)";
  SCORCH_CHECK(fs::is_directory(dir), "no power-function EMA snapshots: '", dir,
               "' does not exist; ", how);
  auto inputs = list_phema_snapshots(dir);
  SCORCH_CHECK(!inputs.empty(), "no power-function EMA snapshots in '", dir,
               "' (files phema-<images>-<std>.pt); ", how);
  return inputs;
}

// FID (and the rest of `scorch eval`'s report) of one reconstruction, from
// memory (every rank holds it; only rank 0 wrote the file): the weights
// `scorch eval --checkpoint FILE` reads, as `model` equals every EMA there.
nlohmann::json evaluate(const PhemaJob& a, const PhemaReconstruction& r, const std::string& path) {
  EvalJob job;
  job.config = parse_config(r.checkpoint.config_yaml, "the config of '" + path + "'", a.overrides);
  Config& c = job.config;
  ScoreNet net = make_score_net(c);
  load_module_state(*net, r.checkpoint.model, "the reconstruction '" + path + "'");
  net->eval();
  if (!a.extractor.empty()) c.eval.feature_extractor = a.extractor;
  SCORCH_CHECK(!c.eval.feature_extractor.empty(),
               "--eval needs a feature extractor: give --extractor FILE (or "
               "eval.feature_extractor=FILE)");
  job.reference = !a.reference.empty() ? a.reference : c.eval.reference;
  SCORCH_CHECK(!job.reference.empty(),
               "--eval needs reference statistics: give --ref STATS.npz "
               "(or eval.reference=FILE), made by `scorch stats`");
  SampleEvalOptions o;
  o.num = a.num > 0 ? a.num : c.eval.num_samples;
  o.batch_size = a.batch > 0 ? a.batch : c.sampling.batch_size;
  o.seed = a.seed >= 0 ? static_cast<uint64_t>(a.seed) : c.seed;
  const std::string description = "post-hoc EMA sigma_rel " + Ema::format_number(r.sigma) + " at " +
                                  std::to_string(r.nimg) + " images ('" + path + "')";
  job.model = EvalJob::Model{make_sde(c), net, description, r.checkpoint.step, o};
  return run_evaluation(job);
}

}  // namespace

PhemaJobResult run_phema_job(const PhemaJob& a) {
  SCORCH_CHECK(a.max_error > 0, "--max-error ", a.max_error,
               " must be > 0 (a relative L2 error of the averaging profile, e.g. 0.1)");
  const auto inputs = snapshots_of(a);
  PhemaReconstructOptions options;
  options.max_residual = a.max_error;
  options.in_std = a.in_stds;
  std::vector<double> stds = a.stds;
  std::sort(stds.begin(), stds.end());
  stds.erase(std::unique(stds.begin(), stds.end()), stds.end());
  const auto results = reconstruct_phema(inputs, stds, options);
  // Under mpirun every rank reconstructs (the same weights) for --eval's
  // samples; rank 0 writes and reports.
  const bool main_rank = make_context(parse_config("{}", "command line", a.overrides)).is_main();
  std::error_code ec;
  if (main_rank) fs::create_directories(a.out, ec);
  SCORCH_CHECK(!ec, "--out '", a.out, "': cannot create the directory: ", ec.message());
  std::vector<nlohmann::json> rows;
  for (const auto& r : results) {
    const auto path = (fs::path(a.out) / phema_output_name(r.sigma)).string();
    if (main_rank) save_checkpoint(path, r.checkpoint);
    log_info("sigma_rel ", Ema::format_number(r.sigma), " at ", r.nimg, " images from ",
             r.inputs.size(), " snapshots (relative error ", r.fit.residual, "): ", path);
    rows.push_back({{"std", r.sigma},
                    {"nimg", r.nimg},
                    {"residual", r.fit.residual},
                    {"snapshots", static_cast<int64_t>(r.inputs.size())},
                    {"checkpoint", path}});
  }
  if (a.eval) {
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto report = evaluate(a, results[i], rows[i]["checkpoint"].get<std::string>());
      rows[i]["fid"] = report.empty() ? nlohmann::json() : report["fid"];
      rows[i]["eval"] = report;
    }
  }
  return PhemaJobResult{main_rank, rows};
}

}  // namespace scorch
