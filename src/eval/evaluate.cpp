// Distributed feature extraction of a dataset and the metrics report (see
// evaluate.h).
#include "eval/evaluate.h"

#include <chrono>

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

DatasetFeatures extract_dataset(const std::string& dir, FeatureExtractor& extractor,
                                Communicator& comm, const ExtractOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  ShardedDataset data(dir);
  const auto& m = data.manifest();
  SCORCH_CHECK(m.kind == SampleKind::kImages, "dataset '", dir,
               "' holds vectors; FID, IS and KID score images");
  const int64_t n = options.limit > 0 ? std::min(options.limit, data.size()) : data.size();
  SCORCH_CHECK(n >= 2, "dataset '", dir, "' has ", n,
               " samples; statistics need at least 2 (50,000 is the standard)");
  const int64_t w = comm.size(), r = comm.rank();
  const int64_t first = r * n / w, last = (r + 1) * n / w;
  std::vector<int64_t> counts;
  for (int64_t k = 0; k < w; ++k) counts.push_back((k + 1) * n / w - k * n / w);

  std::unique_ptr<ProgressBar> bar;
  if (options.progress && r == 0) bar = std::make_unique<ProgressBar>("features", last - first);
  std::optional<FeatureStats> stats;
  std::vector<torch::Tensor> features, probabilities;
  for (int64_t i = first; i < last; i += options.batch_size) {
    const int64_t b = std::min(options.batch_size, last - i);
    const auto images = data.read_range(i, b).permute({0, 3, 1, 2}).contiguous();  // NCHW uint8
    const auto f = extractor.features(images);
    if (!stats) stats.emplace(f.size(1));
    stats->update(f);
    if (options.features) features.push_back(f.to(torch::kFloat));
    if (options.probabilities) probabilities.push_back(extractor.class_probabilities(images));
    if (bar) bar->add(b);
  }
  if (bar) bar->finish();

  // The feature dimension, from whichever rank has one (every rank has >= 1
  // sample unless n < w).
  auto dim = torch::full({1}, stats ? stats->dim() : int64_t{0}, torch::kLong);
  comm.all_reduce_sum(dim);  // same d on every rank with samples, 0 elsewhere
  const int64_t ranks_with_data = std::count_if(counts.begin(), counts.end(), [](int64_t c) { return c > 0; });
  const int64_t d = dim[0].item<int64_t>() / ranks_with_data;
  if (!stats) stats.emplace(d);
  auto packed = stats->pack();
  comm.all_reduce_sum(packed);

  DatasetFeatures out;
  out.stats = FeatureStats::unpack(packed, d);
  out.count = n;
  if (options.features) {
    auto mine = features.empty() ? torch::zeros({0, d}) : torch::cat(features);
    out.features = gather_rows(comm, mine, counts);
  }
  if (options.probabilities) {
    auto classes = torch::full({1}, probabilities.empty() ? int64_t{0} : probabilities[0].size(1),
                               torch::kLong);
    comm.all_reduce_sum(classes);
    const int64_t c = classes[0].item<int64_t>() / ranks_with_data;
    auto mine = probabilities.empty() ? torch::zeros({0, c}, torch::kDouble) : torch::cat(probabilities);
    out.probabilities = gather_rows(comm, mine, counts);
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

nlohmann::json score_against(const DatasetFeatures& samples, const ReferenceStats& reference,
                             const std::string& extractor_identity) {
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
    o.splits = std::min<int64_t>(10, samples.probabilities.size(0));
    o.input = ClassifierOutput::kProbabilities;
    const auto is = inception_score(samples.probabilities, o);
    report["inception_score"] = is.mean;
    report["inception_score_std"] = is.std;
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
