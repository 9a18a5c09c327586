// Samples as datasets store them, and generation for evaluation: samples
// drawn across the ranks of a job with per-sample noise, their features
// extracted and, optionally, written in the sharded dataset format
// (data/shard_writer.h). Images are stored as score_sde stores them for FID:
// uint8 = clip(x * 255 + 1e-3, 0, 255) truncated, after the inverse data
// scaler (the 1e-3 only keeps values that are k/255 up to rounding at k).
// `scorch sample`'s datasets are written by jobs/sample_dataset.h.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>

#include "data/shard_format.h"
#include "data/shard_writer.h"
#include "eval/evaluate.h"
#include "sampling/pc_sampler.h"

namespace scorch {

struct Config;

// Generation for evaluation, spread over the ranks of a job: image i is drawn
// with per-sample noise (core/sample_noise.h) seeded by (seed, i), so the
// images, and the metrics up to float64 rounding, are the same on any number
// of ranks and with any batch size. Blocks are assigned and gathered as in
// extract_images (evaluate.h); rank 0 writes the images to `out_dir` when it
// is set. Every rank must call this with the same options.
struct SampleEvalOptions {
  int64_t num = 0;
  int64_t batch_size = 0;   // samples per sampler call and per extraction block
  uint64_t seed = 0;
  bool features = false;       // gather features (KID, precision/recall)
  bool probabilities = true;   // gather class probabilities (IS)
  std::string out_dir;         // "" = keep no images
  bool overwrite = false;
  bool progress = true;
};

struct SampleEvalResult {
  DatasetFeatures features;
  int64_t nfe = 0;
  double sampling_seconds = 0;  // this rank's time in the sampler
  double extract_seconds = 0;   // this rank's time in the extractor and collectives
  double seconds = 0;           // wall time of the whole call
};

// Draws samples [first, first + n) in the model's data space: [n, ...].
using IndexedSampler = std::function<SampleResult(int64_t first, int64_t n)>;

SampleEvalResult sample_and_extract(const Config& config, const IndexedSampler& sampler,
                                    FeatureExtractor& extractor, Communicator& comm,
                                    const SampleEvalOptions& options);

// The shard writer's options for a dataset of the model's samples (images or
// vectors of config.data, split "samples"); `what` opens its source line.
ShardWriterOptions sample_writer_options(const Config& config, const std::string& what,
                                         bool overwrite);

// Model-space samples -> what the dataset stores: uint8 [N, H, W, C] for
// images (inverse scaler, clip(x * 255) truncated), float32 [N, D] for vectors.
torch::Tensor to_storage(const Config& config, const torch::Tensor& samples);

}  // namespace scorch
