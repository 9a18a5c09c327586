// scorch phema: EDM2's post-hoc EMA. Reconstructs the power-function EMA of
// any requested sigma_rel from the profiles a run stored in workdir/phema/
// (model.phema_std, training.phema_snapshot_kimg) and writes each as a
// checkpoint that `scorch sample` and `scorch eval` read; with --eval, scores
// each like `scorch eval` and prints FID by sigma_rel (jobs/phema_job.h).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "jobs/phema_job.h"
#include "train/ema.h"

namespace scorch::cli {
namespace {

struct PhemaArgs {
  PhemaJob job;
  bool json = false;
};

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
  const PhemaJobResult result = run_phema_job(a.job);
  if (!result.main_rank) return kExitOk;
  if (a.json)
    std::cout << nlohmann::json{{"workdir", a.job.workdir}, {"out", a.job.out},
                                {"results", result.rows}}
                     .dump()
              << std::endl;
  else
    print_table(result.rows, a.job.eval);
  return kExitOk;
}

}  // namespace

void add_phema_command(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<PhemaArgs>();
  auto* cmd = app.add_subcommand(
      "phema",
      "Post-hoc EMA (EDM2): reconstruct the power-function EMA of any sigma_rel from "
      "the snapshots of a run with model.phema_std and training.phema_snapshot_kimg");
  cmd->add_option("--workdir", args->job.workdir, "run directory whose phema/ holds the snapshots")
      ->required();
  cmd->add_option("--std", args->job.stds,
                  "relative standard deviations to reconstruct, in (0, 0.2886], e.g. "
                  "0.02,0.05,0.1,0.15")
      ->required()
      ->delimiter(',');
  cmd->add_option("--out", args->job.out,
                  "directory for the checkpoints phema-<std>.pt (read by scorch sample/eval "
                  "--checkpoint; every weight set in them is the reconstruction)")
      ->required();
  cmd->add_option("--in-std", args->job.in_stds,
                  "use only the stored profiles of these sigma_rel (default: all)")
      ->delimiter(',');
  cmd->add_option("--max-error", args->job.max_error,
                  "refuse a std whose reconstructed averaging profile differs from the requested "
                  "one by more than this, relative (L2 over training time)")
      ->capture_default_str();
  cmd->add_flag("--eval", args->job.eval,
                "score each reconstruction like `scorch eval --checkpoint` and print FID by "
                "sigma_rel (under mpirun the samples are spread over the ranks)");
  cmd->add_option("--ref", args->job.reference,
                  "--eval: reference statistics (default eval.reference)");
  cmd->add_option("--extractor", args->job.extractor,
                  "--eval: feature extractor (default eval.feature_extractor)");
  cmd->add_option("--num", args->job.num, "--eval: samples per std (default eval.num_samples)");
  cmd->add_option("--batch", args->job.batch, "--eval: samples per sampler call");
  cmd->add_option("--seed", args->job.seed, "--eval: seed of the per-sample noise (default: seed)");
  cmd->add_flag("--json", args->json, "print the results as one JSON object on stdout");
  cmd->add_option("overrides", args->job.overrides,
                  "--eval: config overrides key.path=value (sampling.*, dist.*, eval.*)");
  cmd->footer(
      "The stored profiles (t_i, sigma_i) are combined by EDM2's least squares (Algorithm 3) at "
      "the newest snapshot's time; --max-error bounds the residual of that fit.\n"
      "Example: scorch phema --workdir W --std 0.02,0.05,0.1,0.15 --out W/phema_out --eval "
      "--ref stats.npz --extractor inception.pt");
  cmd->callback([&run, args] { run = [args] { return run_phema(*args); }; });
}

}  // namespace scorch::cli
