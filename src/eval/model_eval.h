// FID, IS, KID and precision/recall of a score model: samples drawn with the
// config's sampler (sampling.*) and per-sample noise across the ranks of a
// job (generate.h: sample_and_extract), scored against reference statistics
// (evaluate.h). Used by `scorch eval --workdir` and by evaluation during
// training (eval.freq). Class-conditional models draw sample i with class
// i mod data.num_classes, so every class is equally represented.
//
//   SampleEvalOptions o;  o.num = 50000;  o.batch_size = 500;  o.seed = 1;
//   nlohmann::json report = evaluate_model(config, sde, net, device, *extractor,
//                                          reference, *comm, o);
#pragma once

#include <nlohmann/json.hpp>
#include <memory>

#include "eval/generate.h"
#include "nn/score_net.h"
#include "sde/sde.h"

namespace scorch {

// Every rank must call this with the same arguments; `net` in eval mode on
// `device`. Returns the report on rank 0 (score_against's keys plus nfe,
// seed, world_size, seconds, sampling_seconds, samples_per_s) and an empty
// object on the other ranks.
nlohmann::json evaluate_model(const Config& config, std::shared_ptr<const Sde> sde, ScoreNet net,
                              const torch::Device& device, FeatureExtractor& extractor,
                              const ReferenceStats& reference, Communicator& comm,
                              const SampleEvalOptions& options);

}  // namespace scorch
