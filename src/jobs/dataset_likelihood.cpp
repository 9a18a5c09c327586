// Bits/dim of a dataset (see dataset_likelihood.h).
#include "jobs/dataset_likelihood.h"

#include <algorithm>
#include <chrono>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/sharded_dataset.h"
#include "nn/score_model.h"

namespace scorch {
namespace {

// Model-space samples of a batch of the dataset, checked against the model.
torch::Tensor model_batch(const Config& c, const ShardedDataset& data, const std::string& dir,
                          const torch::Tensor& raw, at::Generator gen) {
  const auto& man = data.manifest();
  if (man.kind == SampleKind::kImages) {
    SCORCH_CHECK(raw.size(1) == c.data.image_size && raw.size(3) == c.data.num_channels,
                 "dataset '", dir, "' holds ", man.describe(), " but the model takes ",
                 c.data.image_size, "x", c.data.image_size, "x", c.data.num_channels, " images");
    return dequantize(raw.permute({0, 3, 1, 2}), c.data.centered, gen);
  }
  SCORCH_CHECK(raw.size(1) == c.data.dim, "dataset '", dir, "' holds ", man.describe(),
               " but the model takes data.dim=", c.data.dim);
  return raw;
}

}  // namespace

DatasetLikelihood dataset_likelihood(const Config& c, std::shared_ptr<const Sde> sde, ScoreNet net,
                                     const torch::Device& device, const std::string& dir,
                                     DatasetLikelihoodOptions o) {
  SCORCH_CHECK(o.batch_size > 0 && o.repeats > 0, "--batch and --repeats must be positive");
  ShardedDataset data(dir, {/*checksums=*/true});
  const bool images = data.manifest().kind == SampleKind::kImages;
  DatasetLikelihood r;
  r.num = o.num > 0 ? std::min(o.num, data.size()) : data.size();
  r.offset = images ? bpd_offset(c.data.centered) : 0.0;
  o.likelihood.discrete_data = images;
  o.likelihood.centered = c.data.centered;
  auto score = make_score_fn(net, sde, c.training.continuous);
  log_info("likelihood of ", r.num, " samples of ", dir, " (", data.manifest().describe(),
           ") under ", o.model_description);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<torch::Tensor> all;
  ProgressBar bar("likelihood", r.num * o.repeats);
  for (int64_t pass = 0; pass < o.repeats; ++pass)
    for (int64_t first = 0; first < r.num; first += o.batch_size) {
      const int64_t b = std::min(o.batch_size, r.num - first);
      const auto x = model_batch(c, data, dir, data.read_range(first, b), o.likelihood.generator);
      auto res = likelihood(*sde, score, x.to(device), o.likelihood);
      all.push_back(res.bpd.cpu());
      r.nfe += res.nfe, ++r.solves;
      bar.add(b);
    }
  bar.finish();
  r.bpd = torch::cat(all);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace scorch
