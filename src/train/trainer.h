// The training loop (score_sde run_lib.train), data-parallel over the ranks
// of the process context (one process, or MPI-launched workers): data ->
// loss under autocast -> backward with the overlapped gradient all-reduce ->
// unscale/clip -> optimize (warm-up) -> EMA -> log.jsonl -> checkpoints
// (rank 0) and EMA sample snapshots, with automatic resume from the newest
// complete checkpoint on any number of ranks, preemption snapshots (exit 75)
// and a non-finite-step policy.
//
//   Trainer trainer(load_config("configs/toy/eight_gaussians_vp.yaml"), "workdir");
//   TrainResult r = trainer.run();
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "core/config.h"

namespace scorch {

struct TrainResult {
  int64_t step = 0;            // optimizer steps completed
  int64_t start_step = 0;      // where this invocation began (0 or the resumed step)
  int64_t images_seen = 0;
  double loss = 0;             // mean loss over the last logging interval
  double seconds = 0;          // wall time of this invocation
  std::string last_checkpoint; // path
  nlohmann::json quality;      // toy data: sliced Wasserstein vs held-out (see eval/toy_quality.h)
  int rank = 0;                // this process's rank
  int world_size = 1;
  int64_t skipped_steps = 0;   // steps skipped for non-finite loss or gradients (fp16 overflow)
};

nlohmann::json to_json(const TrainResult& result);

class Trainer {
 public:
  // Prepares `workdir` (config.yaml, checkpoints/, samples/, eval/).
  // Throws scorch::Error if the workdir can't be used.
  Trainer(Config config, std::string workdir);

  // Trains from the newest complete checkpoint in the workdir (or from
  // scratch) until training.n_iters steps; writes a final checkpoint and
  // snapshot. Deterministic on the CPU: the same config gives bitwise-equal
  // checkpoints, with or without stops and resumes in between; on W ranks the
  // parameters equal those of one rank up to float rounding (the loss noise is
  // drawn per global sample, see core/batch_random.h).
  // Throws scorch::Preempted after a preemption snapshot, scorch::RunFailure
  // when training diverges (training.nonfinite_patience), scorch::Error on bad
  // input.
  TrainResult run();

 private:
  Config config_;
  std::string workdir_;
};

}  // namespace scorch
