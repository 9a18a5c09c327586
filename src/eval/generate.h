// Generating a sample dataset: N samples drawn batch by batch and written in
// the sharded dataset format (data/shard_writer.h), so every tool that reads a
// dataset reads them, plus a PNG preview (an image grid, or a scatter plot of
// 2-D vectors). Images are stored as score_sde stores them for FID:
// uint8 = clip(x * 255 + 1e-3, 0, 255) truncated, after the inverse data
// scaler (the 1e-3 only keeps values that are k/255 up to rounding at k).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>

#include "data/shard_format.h"
#include "eval/evaluate.h"
#include "sampling/pc_sampler.h"

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

// Draws `batch` samples in the model's data space: [batch, ...].
using BatchSampler = std::function<SampleResult(int64_t batch)>;

GenerateResult generate_dataset(const Config& config, const BatchSampler& sampler,
                                const GenerateOptions& options);

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

// Model-space samples -> what the dataset stores: uint8 [N, H, W, C] for
// images (inverse scaler, clip(x * 255) truncated), float32 [N, D] for vectors.
torch::Tensor to_storage(const Config& config, const torch::Tensor& samples);

}  // namespace scorch
