// OOD scores and AUROC (see ood.h).
#include "jobs/ood.h"

#include <algorithm>
#include <vector>

#include "core/compat.h"
#include "core/config.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/sharded_dataset.h"
#include "data/source.h"
#include "likelihood/likelihood.h"
#include "losses/loss.h"
#include "nn/score_model.h"

namespace scorch {

namespace {
constexpr uint64_t kOodStream = 0x00D5;
}

torch::Tensor denoising_score(const Config& config, std::shared_ptr<const Sde> sde,
                              ScoreNetImpl& net, const torch::Tensor& x, int64_t draws,
                              uint64_t seed) {
  SCORCH_CHECK(draws >= 1, "the denoising score needs at least one draw, got ", draws);
  auto loss = make_loss(config, std::move(sde));
  torch::NoGradGuard no_grad;
  auto total = torch::zeros({x.size(0)}, torch::kDouble);
  for (int64_t k = 0; k < draws; ++k) {
    seed_streams(seed, kOodStream, static_cast<uint64_t>(k));
    total += (*loss)(net, x).per_sample.detach().to(torch::kCPU, torch::kDouble);
  }
  return total / static_cast<double>(draws);
}

double auroc(const torch::Tensor& inlier, const torch::Tensor& outlier) {
  const auto a = inlier.to(torch::kCPU, torch::kDouble).contiguous();
  const auto b = outlier.to(torch::kCPU, torch::kDouble).contiguous();
  const int64_t n_in = a.numel(), n_out = b.numel();
  SCORCH_CHECK(n_in > 0 && n_out > 0, "AUROC needs scores of both sets (got ", n_in, " and ",
               n_out, ")");
  // Ranks of the pooled scores, ties averaged; U = rank sum of outliers - n_out (n_out + 1) / 2.
  std::vector<std::pair<double, bool>> all;
  all.reserve(n_in + n_out);
  for (int64_t i = 0; i < n_in; ++i) all.emplace_back(a.data_ptr<double>()[i], false);
  for (int64_t i = 0; i < n_out; ++i) all.emplace_back(b.data_ptr<double>()[i], true);
  std::sort(all.begin(), all.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  double rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double rank = 0.5 * static_cast<double>(i + 1 + j);  // mean of ranks i+1 .. j
    for (size_t k = i; k < j; ++k)
      if (all[k].second) rank_sum += rank;
    i = j;
  }
  const double u = rank_sum - 0.5 * static_cast<double>(n_out) * (n_out + 1);
  return u / (static_cast<double>(n_in) * static_cast<double>(n_out));
}

torch::Tensor ood_scores(const Config& c, std::shared_ptr<const Sde> sde, ScoreNet net,
                         const torch::Device& device, const std::string& dir,
                         const OodScoreOptions& o) {
  ShardedDataset data(dir, {/*checksums=*/true});
  const bool images = data.manifest().kind == SampleKind::kImages;
  const int64_t n = std::min(o.num, data.size());
  auto gen = compat::cpu_generator(o.seed);
  std::vector<torch::Tensor> out;
  std::unique_ptr<ProgressBar> bar;
  if (!o.progress.empty()) bar = std::make_unique<ProgressBar>(o.progress, n);
  for (int64_t first = 0; first < n; first += o.batch_size) {
    const int64_t b = std::min(o.batch_size, n - first);
    auto raw = data.read_range(first, b);
    const bool fits = images ? raw.size(1) == c.data.image_size && raw.size(3) == c.data.num_channels
                             : raw.size(1) == c.data.dim;
    SCORCH_CHECK(fits, "dataset '", dir, "' holds ", data.manifest().describe(),
                 ", which the model does not take (data.image_size=", c.data.image_size,
                 ", data.num_channels=", c.data.num_channels, ", data.dim=", c.data.dim, ")");
    if (o.bpd) {
      LikelihoodOptions lo;
      lo.discrete_data = images;
      lo.centered = c.data.centered;
      lo.generator = gen;
      auto x = images ? dequantize(raw.permute({0, 3, 1, 2}), c.data.centered, gen) : raw;
      auto score = make_score_fn(net, sde, c.training.continuous);
      out.push_back(likelihood(*sde, score, x.to(device), lo).bpd.cpu());
    } else {
      auto x = images ? stored_to_model(raw, c.data.centered) : raw;
      out.push_back(denoising_score(c, sde, *net, x.to(device), o.draws, o.seed));
    }
    if (bar) bar->add(b);
  }
  return torch::cat(out);
}

}  // namespace scorch
