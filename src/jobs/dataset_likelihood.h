// `scorch likelihood` as a library call: bits/dim of the first N samples of a
// dataset under a model, through the probability-flow ODE (likelihood.h),
// over `repeats` passes with fresh dequantization and probes (score_sde's
// evaluation runs 5). Images are uniformly dequantized and scaled as in
// training, with score_sde's offsets; vector data gives continuous bits/dim.
//
//   DatasetLikelihood r = dataset_likelihood(config, sde, net, device, "data/test", o);
#pragma once

#include <memory>
#include <string>

#include "likelihood/likelihood.h"
#include "nn/score_net.h"

namespace scorch {

struct Config;

struct DatasetLikelihoodOptions {
  LikelihoodOptions likelihood;  // ode tolerances, eps, divergence, generator
  int64_t num = 0;               // samples from the start; 0 = all
  int64_t batch_size = 256;      // samples per ODE solve
  int64_t repeats = 1;
  std::string model_description;  // for the log line
};

struct DatasetLikelihood {
  torch::Tensor bpd;      // [num * repeats] float64, bits/dim per evaluation
  int64_t num = 0;        // samples evaluated per pass
  int64_t nfe = 0;        // score evaluations, all solves
  int64_t solves = 0;
  double offset = 0;      // the bits/dim offset of the image convention (0 for vectors)
  double seconds = 0;
};

// Throws scorch::Error naming the dataset when its samples do not fit the
// model (config.data).
DatasetLikelihood dataset_likelihood(const Config& config, std::shared_ptr<const Sde> sde,
                                     ScoreNet net, const torch::Device& device,
                                     const std::string& dir, DatasetLikelihoodOptions options);

}  // namespace scorch
