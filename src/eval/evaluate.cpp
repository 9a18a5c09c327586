// Distributed feature extraction of a dataset and the metrics report (see
// evaluate.h).
#include "eval/evaluate.h"

#include <chrono>
#include <numeric>

#include "core/error.h"
#include "core/progress.h"
#include "data/sharded_dataset.h"

namespace scorch {
namespace {

// Every rank's rows [n_r, ...] concatenated in rank order, for shares of
// different sizes: padded to the largest share for the all-gather.
torch::Tensor gather_rows(Communicator& comm, const torch::Tensor& mine,
                          const std::vector<int64_t>& counts) {
  const int64_t most = *std::max_element(counts.begin(), counts.end());
  std::vector<int64_t> shape = mine.sizes().vec();
  shape[0] = most;
  auto padded = torch::zeros(shape, mine.options());
  if (mine.size(0) > 0) padded.narrow(0, 0, mine.size(0)).copy_(mine);
  const auto all = comm.all_gather(padded);
  std::vector<torch::Tensor> parts;
  for (size_t r = 0; r < counts.size(); ++r)
    parts.push_back(all.narrow(0, static_cast<int64_t>(r) * most, counts[r]));
  return torch::cat(parts);
}

}  // namespace

DatasetFeatures extract_images(int64_t total, const ImageBlockFn& images,
                               FeatureExtractor& extractor, Communicator& comm,
                               const ExtractOptions& options, const RoundImagesFn& on_images) {
  const auto t0 = std::chrono::steady_clock::now();
  TORCH_CHECK(total >= 1 && options.batch_size >= 1, "extract_images: bad total or batch size");
  const int64_t w = comm.size(), r = comm.rank(), bs = options.batch_size;
  const int64_t blocks = (total + bs - 1) / bs, rounds = (blocks + w - 1) / w;
  auto block_size = [&](int64_t k) { return k < blocks ? std::min(bs, total - k * bs) : 0; };

  std::unique_ptr<ProgressBar> bar;
  if (options.progress && r == 0) bar = std::make_unique<ProgressBar>("features", total);
  std::optional<FeatureStats> stats;
  std::vector<torch::Tensor> features, probabilities;
  int64_t d = 0, classes = 0;  // known on every rank after round 0
  for (int64_t j = 0; j < rounds; ++j) {
    const int64_t k = j * w + r, n = block_size(k);
    torch::Tensor f, p, img;
    if (n > 0) {
      img = images(k * bs, n);
      TORCH_CHECK(img.scalar_type() == torch::kByte && img.dim() == 4 && img.size(0) == n,
                  "extract_images: a block must be uint8 [n, C, H, W]");
      f = extractor.features(img);
      if (!stats) stats.emplace(f.size(1));
      stats->update(f);
      if (options.probabilities) p = extractor.class_probabilities(img);
    }
    if (j == 0) {  // the dimensions, from the ranks that have a block in round 0
      auto dims = torch::tensor({f.defined() ? f.size(1) : int64_t{0},
                                 p.defined() ? p.size(1) : int64_t{0}, n > 0 ? int64_t{1} : 0},
                                torch::kLong);
      comm.all_reduce_sum(dims);
      d = dims[0].item<int64_t>() / dims[2].item<int64_t>();
      classes = dims[1].item<int64_t>() / dims[2].item<int64_t>();
    }
    std::vector<int64_t> counts;
    for (int64_t q = 0; q < w; ++q) counts.push_back(block_size(j * w + q));
    if (options.features)
      features.push_back(
          gather_rows(comm, f.defined() ? f.to(torch::kFloat) : torch::zeros({0, d}), counts));
    if (options.probabilities)
      probabilities.push_back(
          gather_rows(comm, p.defined() ? p : torch::zeros({0, classes}, torch::kDouble), counts));
    if (on_images) {
      std::vector<int64_t> shape = {0, 0, 0, 0};
      if (img.defined()) shape = img.sizes().vec();
      // Every rank learns the image shape from rank 0's block (rank 0 has one in every round).
      auto dims = torch::tensor(std::vector<int64_t>{shape[1], shape[2], shape[3]}, torch::kLong);
      comm.broadcast(dims, 0);
      auto mine = img.defined() ? img.contiguous()
                                : torch::zeros({0, dims[0].item<int64_t>(), dims[1].item<int64_t>(),
                                                dims[2].item<int64_t>()},
                                               torch::kByte);
      auto all = gather_rows(comm, mine, counts);
      if (r == 0) on_images(all);
    }
    if (bar) bar->add(std::accumulate(counts.begin(), counts.end(), int64_t{0}));
  }
  if (bar) bar->finish();

  if (!stats) stats.emplace(d);
  auto packed = stats->pack();
  comm.all_reduce_sum(packed);

  DatasetFeatures out;
  out.stats = FeatureStats::unpack(packed, d);
  out.count = total;
  if (options.features) out.features = torch::cat(features);
  if (options.probabilities) out.probabilities = torch::cat(probabilities);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

DatasetFeatures extract_dataset(const std::string& dir, FeatureExtractor& extractor,
                                Communicator& comm, const ExtractOptions& options) {
  ShardedDataset data(dir);
  const auto& m = data.manifest();
  SCORCH_CHECK(m.kind == SampleKind::kImages, "dataset '", dir,
               "' holds vectors; FID, IS and KID score images");
  const int64_t n = options.limit > 0 ? std::min(options.limit, data.size()) : data.size();
  SCORCH_CHECK(n >= 2, "dataset '", dir, "' has ", n,
               " samples; statistics need at least 2 (50,000 is the standard)");
  return extract_images(
      n,
      [&](int64_t first, int64_t count) {
        return data.read_range(first, count).permute({0, 3, 1, 2}).contiguous();  // NCHW uint8
      },
      extractor, comm, options);
}

nlohmann::json score_against(const DatasetFeatures& samples, const ReferenceStats& reference,
                             const std::string& extractor_identity, const ScoreOptions& options) {
  SCORCH_CHECK(reference.extractor.empty() || reference.extractor == extractor_identity,
               "the reference statistics were computed with '", reference.extractor,
               "' but this evaluation uses '", extractor_identity,
               "'; statistics of different feature extractors cannot be compared");
  SCORCH_CHECK(reference.mu.numel() == samples.stats.dim(), "the reference statistics have ",
               reference.mu.numel(), "-dimensional features but the extractor gives ",
               samples.stats.dim());
  nlohmann::json report;
  report["num_samples"] = samples.count;
  report["reference_count"] = reference.count;
  report["extractor"] = extractor_identity;
  report["fid"] = frechet_distance(samples.stats.mean(), samples.stats.covariance(),
                                   reference.mu, reference.sigma);
  if (samples.probabilities.defined()) {
    InceptionScoreOptions o;
    SCORCH_CHECK(options.is_splits >= 1, "eval.is_splits must be >= 1, got ", options.is_splits);
    o.splits = std::min<int64_t>(options.is_splits, samples.probabilities.size(0));
    o.input = ClassifierOutput::kProbabilities;
    const auto is = inception_score(samples.probabilities, o);
    report["inception_score"] = is.mean;
    report["inception_score_std"] = is.std;
    report["inception_score_splits"] = o.splits;
  } else {
    report["inception_score"] = nullptr;
  }
  if (reference.features.defined() && samples.features.defined()) {
    const auto kid = kernel_inception_distance(samples.features, reference.features);
    report["kid"] = kid.mean;
    report["kid_std"] = kid.std;
    const auto pr = precision_recall(reference.features, samples.features);
    report["precision"] = pr.precision;
    report["recall"] = pr.recall;
  } else {
    report["kid"] = nullptr;
    report["precision"] = nullptr;
    report["recall"] = nullptr;
  }
  return report;
}

}  // namespace scorch
