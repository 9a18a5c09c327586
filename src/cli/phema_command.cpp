// scorch phema: EDM2's post-hoc EMA. Reconstructs the power-function EMA of
// any requested sigma_rel from the profiles a run stored in workdir/phema/
// (model.phema_std, training.phema_snapshot_kimg) and writes each as a
// checkpoint that `scorch sample` and `scorch eval` read; with --eval, scores
// each like `scorch eval` and prints FID by sigma_rel (train/phema.h).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/context.h"
#include "jobs/eval_job.h"
#include "nn/score_net.h"
#include "sde/sde.h"
#include "train/phema.h"

namespace scorch::cli {
namespace {

namespace fs = std::filesystem;

struct PhemaArgs {
  std::string workdir, out, ref, extractor;
  std::vector<double> stds, in_stds;
  std::vector<std::string> overrides;
  double max_error = 0.1;
  int64_t num = 0, batch = 0, seed = -1;
  bool eval = false, json = false;
};

// The snapshots of --workdir, or an error saying how to get them.
std::vector<PhemaSnapshotFile> snapshots_of(const PhemaArgs& a) {
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
nlohmann::json evaluate(const PhemaArgs& a, const PhemaReconstruction& r, const std::string& path) {
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
  job.reference = !a.ref.empty() ? a.ref : c.eval.reference;
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

// One line per std: sigma_rel, residual, snapshots, [FID], checkpoint.
void print_table(const std::vector<nlohmann::json>& rows, bool eval) {
  std::printf("%-10s %-10s %-9s %s%s\n", "sigma_rel", "residual", "snapshots",
              eval ? "FID        " : "", "checkpoint");
  for (const auto& r : rows) {
    std::printf("%-10s %-10.3g %-9lld ", Ema::format_number(r["std"].get<double>()).c_str(),
                r["residual"].get<double>(), static_cast<long long>(r["snapshots"].get<int64_t>()));
    if (eval) std::printf("%-10.4f ", r["fid"].get<double>());
    std::printf("%s\n", r["checkpoint"].get<std::string>().c_str());
  }
  std::fflush(stdout);
}

int run_phema(const PhemaArgs& a) {
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
  if (!main_rank) return kExitOk;
  if (a.json)
    std::cout << nlohmann::json{{"workdir", a.workdir}, {"out", a.out}, {"results", rows}}.dump()
              << std::endl;
  else
    print_table(rows, a.eval);
  return kExitOk;
}

}  // namespace

void add_phema_command(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<PhemaArgs>();
  auto* cmd = app.add_subcommand(
      "phema",
      "Post-hoc EMA (EDM2): reconstruct the power-function EMA of any sigma_rel from "
      "the snapshots of a run with model.phema_std and training.phema_snapshot_kimg");
  cmd->add_option("--workdir", args->workdir, "run directory whose phema/ holds the snapshots")
      ->required();
  cmd->add_option("--std", args->stds,
                  "relative standard deviations to reconstruct, in (0, 0.2886], e.g. "
                  "0.02,0.05,0.1,0.15")
      ->required()
      ->delimiter(',');
  cmd->add_option("--out", args->out,
                  "directory for the checkpoints phema-<std>.pt (read by scorch sample/eval "
                  "--checkpoint; every weight set in them is the reconstruction)")
      ->required();
  cmd->add_option("--in-std", args->in_stds,
                  "use only the stored profiles of these sigma_rel (default: all)")
      ->delimiter(',');
  cmd->add_option("--max-error", args->max_error,
                  "refuse a std whose reconstructed averaging profile differs from the requested "
                  "one by more than this, relative (L2 over training time)")
      ->capture_default_str();
  cmd->add_flag("--eval", args->eval,
                "score each reconstruction like `scorch eval --checkpoint` and print FID by "
                "sigma_rel (under mpirun the samples are spread over the ranks)");
  cmd->add_option("--ref", args->ref, "--eval: reference statistics (default eval.reference)");
  cmd->add_option("--extractor", args->extractor,
                  "--eval: feature extractor (default eval.feature_extractor)");
  cmd->add_option("--num", args->num, "--eval: samples per std (default eval.num_samples)");
  cmd->add_option("--batch", args->batch, "--eval: samples per sampler call");
  cmd->add_option("--seed", args->seed, "--eval: seed of the per-sample noise (default: seed)");
  cmd->add_flag("--json", args->json, "print the results as one JSON object on stdout");
  cmd->add_option("overrides", args->overrides,
                  "--eval: config overrides key.path=value (sampling.*, dist.*, eval.*)");
  cmd->footer(
      "The stored profiles (t_i, sigma_i) are combined by EDM2's least squares (Algorithm 3) at "
      "the newest snapshot's time; --max-error bounds the residual of that fit.\n"
      "Example: scorch phema --workdir W --std 0.02,0.05,0.1,0.15 --out W/phema_out --eval "
      "--ref stats.npz --extractor inception.pt");
  cmd->callback([&run, args] { run = [args] { return run_phema(*args); }; });
}

}  // namespace scorch::cli
