// The training loop (score_sde run_lib.train, one process; the distributed
// context plugs in through DistContext): data -> loss -> backward ->
// optimize (warm-up, clipping) -> EMA -> log.jsonl -> checkpoints and EMA
// sample snapshots, with automatic resume from the newest complete checkpoint.
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
  // checkpoints, with or without stops and resumes in between.
  TrainResult run();

 private:
  Config config_;
  std::string workdir_;
};

}  // namespace scorch
