// Scoring a set of images with a feature extractor, spread over the ranks of
// a job. The set is cut into blocks of `batch_size` images; in round j, rank
// r takes block j W + r, so the work is balanced and each round's blocks are
// consecutive. FID's float64 sums are all-reduced at the end (EDM fid.py), so
// every rank holds the statistics of the whole set; features and class
// probabilities, which KID, precision/recall and IS need whole, are gathered
// to every rank after each round, in image order. The result does not depend
// on the number of ranks (up to float64 rounding in the sums).
//
//   auto comm = make_communicator(ctx);
//   DatasetFeatures f = extract_dataset("samples/", *extractor, *comm, {.batch_size = 250});
//   double fid = frechet_distance(f.stats, reference);
#pragma once

#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "dist/communicator.h"
#include "eval/features.h"
#include "eval/metrics.h"

namespace scorch {

struct ExtractOptions {
  int64_t batch_size = 250;
  int64_t limit = 0;          // first `limit` samples only; 0 = all
  bool features = false;      // gather the features [N, d] (KID, precision/recall)
  bool probabilities = false; // gather the class probabilities [N, C] (IS)
  bool progress = true;       // progress bar on rank 0
};

struct DatasetFeatures {
  FeatureStats stats{1};
  torch::Tensor features;       // float32 [N, d], or undefined
  torch::Tensor probabilities;  // float64 [N, C], or undefined
  int64_t count = 0;
  double seconds = 0;
};

// Images [first, first + n) of the set: uint8 [n, C, H, W] on the CPU.
using ImageBlockFn = std::function<torch::Tensor(int64_t first, int64_t n)>;
// Called on rank 0 after each round with that round's images of every rank,
// in image order (uint8 [m, C, H, W]); e.g. to write generated samples.
using RoundImagesFn = std::function<void(const torch::Tensor& images)>;

// The blocked, distributed extraction of `total` images (see above); every
// rank must call it with the same total and options. With `on_images` the
// images themselves are gathered to rank 0 too.
DatasetFeatures extract_images(int64_t total, const ImageBlockFn& images,
                               FeatureExtractor& extractor, Communicator& comm,
                               const ExtractOptions& options, const RoundImagesFn& on_images = {});

// extract_images over a dataset directory (the first `limit` samples). Throws
// scorch::Error naming the directory if it is not an image dataset.
DatasetFeatures extract_dataset(const std::string& dir, FeatureExtractor& extractor,
                                Communicator& comm, const ExtractOptions& options);

// Reference statistics: mu [d] and sigma [d, d] float64, and when known the
// sample count, the extractor identity and the features [N, d] float32 (KID
// and precision/recall need them). Stored as .npz by `scorch stats`
// (eval/reference_stats.h), readable from pytorch-fid / EDM files.
struct ReferenceStats {
  torch::Tensor mu, sigma;
  int64_t count = 0;       // 0 when the file does not say
  std::string extractor;   // "" when the file does not say
  torch::Tensor features;  // undefined when the file has none
};

struct ScoreOptions {
  int64_t is_splits = 10;  // Inception Score splits (1: the single-split convention)
};

// FID, IS, KID and precision/recall of `samples` against `reference`, as the
// JSON report of `scorch eval`: fid, inception_score, inception_score_std,
// kid, kid_std, precision, recall (null where the reference has no features),
// num_samples, reference_count, extractor. Throws scorch::Error when the
// reference was computed with another extractor or has another dimension.
nlohmann::json score_against(const DatasetFeatures& samples, const ReferenceStats& reference,
                             const std::string& extractor_identity,
                             const ScoreOptions& options = {});

}  // namespace scorch
