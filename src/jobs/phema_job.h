// `scorch phema` as a library call: EDM2's post-hoc EMA. Reconstructs the
// power-function EMA of each requested sigma_rel from the profiles a run
// stored in workdir/phema/ (model.phema_std, training.phema_snapshot_kimg;
// train/phema.h), writes each as a checkpoint that `scorch sample` and
// `scorch eval` read, and optionally scores each like `scorch eval`.
//
//   PhemaJob job;  job.workdir = "runs/x";  job.stds = {0.05, 0.1};
//   job.out = "runs/x/phema_out";
//   PhemaJobResult r = run_phema_job(job);   // r.rows on rank 0
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace scorch {

struct PhemaJob {
  std::string workdir;               // the run: its phema/ holds the snapshots
  std::vector<double> stds;          // sigma_rel to reconstruct, in (0, 0.2886]
  std::string out;                   // directory for phema-<std>.pt
  std::vector<double> in_stds;       // only these stored profiles (empty: all)
  double max_error = 0.1;            // largest relative L2 error of a reconstructed profile
  std::vector<std::string> overrides;  // eval: config overrides (sampling.*, dist.*, eval.*)
  // Score each reconstruction like `scorch eval --checkpoint` (under mpirun
  // the samples are spread over the ranks; every rank calls run_phema_job).
  bool eval = false;
  std::string reference;  // eval: statistics file (default eval.reference)
  std::string extractor;  // eval: feature extractor (default eval.feature_extractor)
  int64_t num = 0;        // eval: samples per std (default eval.num_samples)
  int64_t batch = 0;      // eval: samples per sampler call (default sampling.batch_size)
  int64_t seed = -1;      // eval: seed of the per-sample noise (default: seed)
};

struct PhemaJobResult {
  bool main_rank = true;  // rank 0 wrote the checkpoints; the rows are its report
  // One per std, ascending: std, nimg, residual, snapshots, checkpoint; with
  // eval also fid and eval (the report; null on the other ranks).
  std::vector<nlohmann::json> rows;
};

// Throws scorch::Error naming the flag, directory or key at fault (no
// snapshots, a std the stored profiles cannot reach within max_error, ...).
PhemaJobResult run_phema_job(const PhemaJob& job);

}  // namespace scorch
