// EDM2's power-function EMA and post-hoc EMA reconstruction (Karras et al.
// 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models",
// Sec. 3 and App. C; NVlabs/edm2 training/phema.py, reconstruct_phema.py).
//
//   // training (train/ema.h keeps the profiles of model.phema_std as "phema_<std>"):
//   save_phema_snapshots(workdir + "/phema", ema, *model, step, images_seen, to_yaml(config),
//                        comm);
//   // afterwards (`scorch phema`):
//   auto inputs = list_phema_snapshots(workdir + "/phema");
//   for (auto& out : reconstruct_phema(inputs, {0.08, 0.15}, {}))
//     save_checkpoint(out_dir + "/" + phema_output_name(out.sigma), out.checkpoint);
//
// A profile of exponent gamma averages the weights with density
// p(tau) ∝ tau^gamma on [0, t] (t counted in images); its relative standard
// deviation is sigma_rel = sqrt(gamma+1) / ((gamma+2) sqrt(gamma+3)), which
// falls from sqrt(1/12) at gamma = 0 to 0 as gamma grows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "train/ema.h"

namespace scorch {

// sigma_rel at gamma = 0 (a uniform average): the largest profile kept or
// reconstructed, as EDM2's reconstruct_phema.py (std < 0.289).
constexpr double kPhemaStdMax = 0.28867513459481287;  // sqrt(1/12)
// The largest sigma_rel model.phema_std accepts (its config range), so a
// reconstruction's config, which names its std, reads back.
constexpr double kPhemaStdRequestMax = 0.2886;

// gamma -> sigma_rel (EDM2 Eq. 123, phema.py exp_to_std).
double phema_exp_to_std(double exp);
// sigma_rel -> gamma: the largest real root of gamma^3 + 7 gamma^2 +
// (16 - s^-2) gamma + (12 - s^-2) = 0 (Eq. 126, Algorithm 2; phema.py
// std_to_exp). REQUIRES: 0 < sigma <= kPhemaStdMax (then gamma >= 0).
double phema_std_to_exp(double sigma);
// EMA beta of the step that ends at t_next images after t_delta more:
// (1 - t_delta / t_next)^(gamma + 1) (Eq. 127, power_function_beta).
double phema_beta(double sigma, double t_next, double t_delta);
// Inner product of the response functions of profiles (a_ofs, a_std) and
// (b_ofs, b_std), ofs in images (Eq. 151, Algorithm 3,
// power_function_correlation).
double phema_correlation(double a_ofs, double a_std, double b_ofs, double b_std);

// A power-function profile: relative std `sigma` at training time `nimg`.
struct PhemaProfile {
  double nimg = 0;
  double sigma = 0;
};

struct PhemaFit {
  std::vector<double> coefficients;  // one per input profile; they sum to 1
  // ||sum_i c_i p_i - q|| / ||q|| of the response functions (L2 over time):
  // how far the reconstruction's averaging profile is from the requested one.
  double residual = 0;
};

// EDM2's least squares (Algorithm 3, solve_posthoc_coefficients): A = the
// inputs' correlation matrix, b = their correlation with `out`, x = A^-1 b,
// normalised to sum 1; plus the residual of x. Throws scorch::Error if A is
// singular (duplicate inputs). REQUIRES: every nimg > 0, every std valid.
PhemaFit solve_phema_coefficients(const std::vector<PhemaProfile>& in, const PhemaProfile& out);

// --- snapshots ----------------------------------------------------------------

// One stored profile: "<dir>/phema-<nimg, 12 digits>-<std>.pt", a checkpoint
// (train/checkpoint.h) whose `model` holds the profile's weights (trainable
// parameters; buffers and frozen parameters of the raw model) and whose `ema`
// holds the same weights under the profile's EMA name, plus extra keys
// `phema_std` and `phema_nimg`; `step`, `images_seen` and `config` as the run's.
struct PhemaSnapshotFile {
  std::string path;
  int64_t nimg = 0;
  double sigma = 0;
};

// "phema-000000065536-0.05.pt".
std::string phema_snapshot_name(int64_t nimg, double sigma);

// Writes one file per profile of `ema` (Ema::phema_std) into `dir` (created
// if needed), atomically, on rank 0 of `comm`. A collective when the EMA is
// sharded (Ema::gather_state_dict): then every rank calls it; otherwise the
// other ranks return at once. Throws scorch::Error on I/O failure.
void save_phema_snapshots(const std::string& dir, const Ema& ema, const torch::nn::Module& model,
                          int64_t step, int64_t nimg, const std::string& config_yaml,
                          Communicator& comm);

// The snapshot files in `dir` by name, sorted by (nimg, sigma); other files
// (and *.tmp) are ignored. Empty if `dir` does not exist.
std::vector<PhemaSnapshotFile> list_phema_snapshots(const std::string& dir);

// --- reconstruction -----------------------------------------------------------

struct PhemaReconstruction {
  double sigma = 0;
  int64_t nimg = 0;  // the training time reconstructed: the newest input's
  PhemaFit fit;      // aligned with `inputs`
  std::vector<PhemaSnapshotFile> inputs;
  CheckpointData checkpoint;  // see reconstruct_phema
};

struct PhemaReconstructOptions {
  // A requested std whose fit residual exceeds this is refused (scorch::Error
  // naming --std): the stored profiles cannot express it.
  double max_residual = 0.1;
  std::vector<double> in_std;  // use only stored profiles of these stds; empty: all
};

// Reconstructs each std at the newest input's nimg from the inputs with
// 0 < nimg <= it, streaming over the files once (weights in float32, as
// reconstruct_phema.py). Each result's checkpoint is the newest input's with
// the trainable parameters replaced by the reconstruction in `model` and
// in every EMA that its config names (so `scorch sample` and `scorch eval`
// read it with --weights ema, model or phema_<std>), the config's
// model.phema_std set to [std], and extra keys phema_std, phema_nimg,
// phema_residual, phema_snapshots. Throws scorch::Error (naming --std or the
// file) for an invalid std, no usable snapshot, a residual over the limit,
// or snapshots that disagree on the parameters.
std::vector<PhemaReconstruction> reconstruct_phema(const std::vector<PhemaSnapshotFile>& inputs,
                                                   const std::vector<double>& stds,
                                                   const PhemaReconstructOptions& options);

// "phema-0.08.pt": the file name `scorch phema` gives a reconstruction.
std::string phema_output_name(double sigma);

}  // namespace scorch
