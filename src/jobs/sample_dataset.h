// `scorch sample` as a library call: N samples of a model drawn batch by
// batch and written in the sharded dataset format (data/shard_writer.h), so
// every tool that reads a dataset reads them, plus a PNG preview (an image
// grid, or a scatter plot of 2-D vectors). Unconditional or class-conditional
// (with classifier-free guidance), or conditioned on a dataset's images:
// inpainting, colorization, super-resolution (Song et al. 2021, appendix I,
// PC samplers), or
// interpolation between pairs of images through the probability-flow ODE's
// latents (Song et al. 2021, section 4.3).
//
//   SampleRequest q;  q.generate.num = 64;  q.generate.out_dir = "samples";
//   q.condition = SampleCondition::kInpaint;  q.condition_data = "data/test";
//   GenerateResult r = sample_dataset(config, sde, net, device, q);
#pragma once

#include <memory>
#include <string>

#include "data/shard_format.h"
#include "nn/score_net.h"
#include "sde/sde.h"

namespace scorch {

struct Config;

struct GenerateOptions {
  int64_t num = 0;         // samples to write
  int64_t batch_size = 0;  // samples per sampler call
  uint64_t seed = 0;       // batch b draws from streams seeded by (seed, b)
  std::string out_dir;     // dataset directory to create
  bool overwrite = false;
  bool progress = true;    // progress bar on stderr
  std::string grid;        // PNG preview path ("" = out_dir + "/../<name>.png")
};

struct GenerateResult {
  Manifest manifest;
  int64_t nfe = 0;            // score evaluations per sample
  double seconds = 0;         // sampling and writing
  double samples_per_s = 0;
  std::string grid;           // the preview written
};

enum class SampleCondition { kNone, kInpaint, kColorize, kSuperResolve, kInterpolate };

struct SampleRequest {
  GenerateOptions generate;  // num, batch_size, seed, out_dir, overwrite, progress, grid
  // Class labels: -2 none, -1 sample i gets class i mod data.num_classes, else this class.
  int64_t class_label = -2;
  double guidance = 0.0;  // classifier-free guidance weight w (needs class_label)
  SampleCondition condition = SampleCondition::kNone;
  std::string condition_data;        // the dataset that conditions (not kNone)
  std::string mask = "left";         // inpainting: the known region (sampling/conditional.h)
  int64_t factor = 2;                // super-resolution factor
  int64_t interpolation_steps = 8;   // interpolation: frames per pair, ends included
};

// Draws request.generate.num samples with `net` (eval mode, on `device`) and
// writes them as a dataset, batch b drawn from streams seeded by
// (generate.seed, b) (core/rng.h). Throws scorch::Error naming
// the flag or key at fault when the request does not fit the model or the
// conditioning dataset.
GenerateResult sample_dataset(const Config& config, std::shared_ptr<const Sde> sde, ScoreNet net,
                              const torch::Device& device, const SampleRequest& request);

}  // namespace scorch
