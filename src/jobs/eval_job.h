// `scorch stats` and `scorch eval` as library calls: each sets up the ranks
// of the job (process context and communicator, dist.*), loads the feature
// extractor (eval.feature_extractor) and spreads the work over the ranks.
//
//   EvalJob job{config, "stats.npz"};  job.samples = "samples/";
//   nlohmann::json report = run_evaluation(job);   // rank 0; {} on the others
#pragma once

#include <nlohmann/json.hpp>
#include <memory>
#include <optional>
#include <string>

#include "core/config.h"
#include "eval/evaluate.h"
#include "eval/generate.h"
#include "nn/score_net.h"
#include "sde/sde.h"

namespace scorch {

// Reference statistics of the dataset `data` (mean and covariance of the
// features; the features too with options.features); rank 0 writes `out`
// (.npz) and gets a summary ({out, count, dim, extractor, seconds}).
nlohmann::json compute_reference_stats(const Config& config, const std::string& data,
                                       const std::string& out, const ExtractOptions& options);

// What `scorch eval` scores: a model's samples, drawn across the ranks with
// per-sample noise (model_eval.h), or an existing sample dataset.
struct EvalJob {
  Config config;
  std::string reference;  // statistics file (.npz)
  struct Model {
    std::shared_ptr<const Sde> sde;
    ScoreNet net;  // eval mode; moved to the job's device
    std::string description;
    int64_t step = 0;
    SampleEvalOptions options;
  };
  std::optional<Model> model;  // either this ...
  std::string samples;         // ... or a sample dataset directory
  ExtractOptions extract;      // for `samples`
};

// FID, IS, KID and precision/recall against job.reference; the report on
// rank 0 (score_against's keys plus what was scored), {} on the other ranks.
nlohmann::json run_evaluation(const EvalJob& job);

}  // namespace scorch
