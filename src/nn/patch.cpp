// Patch-based score models (see patch.h): coordinate channels, random crops,
// and the tiled / whole-image scoring of full images.
#include "nn/patch.h"

#include <utility>

#include "core/config.h"
#include "core/error.h"

namespace scorch {

torch::Tensor coordinate_channels(int64_t image_size, const torch::TensorOptions& options) {
  const auto lin = torch::linspace(-1.0, 1.0, image_size, options);
  const auto cols = lin.view({1, image_size}).expand({image_size, image_size});
  const auto rows = lin.view({image_size, 1}).expand({image_size, image_size});
  return torch::stack({cols, rows});
}

std::vector<int64_t> tile_starts(int64_t image_size, int64_t patch_size, int64_t stride) {
  SCORCH_CHECK(patch_size > 0 && patch_size <= image_size && stride > 0 && stride <= patch_size,
               "tiles of ", patch_size, " px at stride ", stride, " cannot cover ", image_size,
               " px (need 0 < stride <= patch <= image)");
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + patch_size <= image_size; s += stride) starts.push_back(s);
  if (starts.back() + patch_size < image_size) starts.push_back(image_size - patch_size);
  return starts;
}

torch::Tensor crop_patches(const torch::Tensor& images, const torch::Tensor& origins,
                           int64_t patch_size) {
  const int64_t b = images.size(0), c = images.size(1), w = images.size(3);
  TORCH_CHECK(origins.dim() == 2 && origins.size(0) == b && origins.size(1) == 2,
              "crop_patches: origins must be [", b, ", 2], got ", origins.sizes());
  const auto offsets = torch::arange(patch_size, origins.options().dtype(torch::kLong));
  const auto o = origins.to(torch::kLong);
  const auto rows = (o.select(1, 0).unsqueeze(1) + offsets).view({b, 1, patch_size, 1});
  const auto cols = (o.select(1, 1).unsqueeze(1) + offsets).view({b, 1, 1, patch_size});
  const auto band = images.gather(2, rows.expand({b, c, patch_size, w}));
  return band.gather(3, cols.expand({b, c, patch_size, patch_size}));
}

Patches random_patches(const torch::Tensor& images, int64_t patch_size, BatchRandom& rng) {
  TORCH_CHECK(images.dim() == 4 && images.size(2) == images.size(3) &&
                  images.size(2) >= patch_size,
              "random_patches: images must be [B, C, S, S] with S >= ", patch_size, ", got ",
              images.sizes());
  const int64_t span = images.size(2) - patch_size + 1;
  Patches p;
  p.origins = rng.randint(span, {images.size(0), 2}, images.options().dtype(torch::kLong));
  p.x = crop_patches(images, p.origins, patch_size);
  return p;
}

PatchScoreNetImpl::PatchScoreNetImpl(ScoreNet inner, const PatchOptions& options)
    : options_(options), inner_(register_module("net", std::move(inner))) {
  if (options_.stride() == 0) options_.stride(std::max<int64_t>(1, options_.patch_size() / 2));
  tile_starts(options_.image_size(), options_.patch_size(), options_.stride());  // checks
}

torch::Tensor PatchScoreNetImpl::coordinates(const torch::TensorOptions& options) const {
  const auto c = coordinate_channels(options_.image_size(), options);
  return options_.centered() ? c : (c + 1) / 2;
}

torch::Tensor PatchScoreNetImpl::score_patches(const torch::Tensor& x, const torch::Tensor& origins,
                                               const torch::Tensor& time_cond,
                                               const torch::Tensor& class_labels) {
  const int64_t n = x.size(0), b = origins.size(0), s = options_.image_size();
  TORCH_CHECK(b > 0 && n % b == 0, "PatchScoreNet: ", n, " patches for ", b, " origins");
  const auto o = n == b ? origins : origins.repeat({n / b, 1});
  const auto coords = crop_patches(
      coordinates(x.options()).unsqueeze(0).expand({n, 2, s, s}), o.to(x.device()),
      options_.patch_size());
  return inner_->forward(torch::cat({x, coords}, 1), time_cond, class_labels);
}

torch::Tensor PatchScoreNetImpl::score_tiles(const torch::Tensor& x, const torch::Tensor& time_cond,
                                             const torch::Tensor& class_labels) {
  const int64_t b = x.size(0), c = x.size(1), s = options_.image_size(),
                p = options_.patch_size();
  const auto starts = tile_starts(s, p, options_.stride());
  std::vector<int64_t> origin_values;
  for (int64_t r : starts)
    for (int64_t col : starts) origin_values.insert(origin_values.end(), {r, col});
  const int64_t tiles = static_cast<int64_t>(origin_values.size()) / 2;
  const auto tile_origins =
      torch::tensor(origin_values, torch::TensorOptions().dtype(torch::kLong)).view({tiles, 2});
  // Rows ordered (image, tile): image i's tiles are rows i * tiles ... .
  const auto origins = tile_origins.repeat({b, 1}).to(x.device());
  const auto patches = crop_patches(x.repeat_interleave(tiles, 0), origins, p);
  const auto labels =
      class_labels.defined() ? class_labels.repeat_interleave(tiles, 0) : class_labels;
  const auto out = score_patches(patches, origins, time_cond.repeat_interleave(tiles, 0), labels)
                       .view({b, tiles, c, p, p});
  auto sum = torch::zeros({b, c, s, s}, out.options());
  auto count = torch::zeros({1, 1, s, s}, out.options());
  for (int64_t k = 0; k < tiles; ++k) {
    const int64_t r = origin_values[2 * k], col = origin_values[2 * k + 1];
    sum.narrow(2, r, p).narrow(3, col, p).add_(out.select(1, k));
    count.narrow(2, r, p).narrow(3, col, p).add_(1.0);
  }
  return sum / count;
}

torch::Tensor PatchScoreNetImpl::forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                                         const torch::Tensor& class_labels) {
  const int64_t p = options_.patch_size(), s = options_.image_size();
  TORCH_CHECK(x.dim() == 4 && x.size(2) == x.size(3), "PatchScoreNet expects [B, C, H, H], got ",
              x.sizes());
  if (origins_.defined()) {
    TORCH_CHECK(x.size(2) == p, "PatchScoreNet: with patch origins set, x must be ", p, "x", p,
                " patches, got ", x.sizes());
    return score_patches(x, origins_, time_cond, class_labels);
  }
  TORCH_CHECK(x.size(2) == s, "PatchScoreNet scores whole ", s, "x", s,
              " images (patches need their origins), got ", x.sizes());
  if (options_.sampling() == PatchSampling::kFull) {
    const auto coords = coordinates(x.options()).unsqueeze(0).expand({x.size(0), 2, s, s});
    return inner_->forward(torch::cat({x, coords}, 1), time_cond, class_labels);
  }
  return score_tiles(x, time_cond, class_labels);
}

PatchOriginsScope::PatchOriginsScope(ScoreNetImpl& net, torch::Tensor origins)
    : net_(dynamic_cast<PatchScoreNetImpl*>(&net)) {
  if (net_) net_->set_patch_origins(std::move(origins));
}

PatchOriginsScope::~PatchOriginsScope() {
  if (net_) net_->set_patch_origins({});
}

ScoreNet make_patch_score_net(const Config& config, ScoreNet inner) {
  const auto& m = config.model;
  return std::make_shared<PatchScoreNetImpl>(
      std::move(inner),
      PatchOptions()
          .patch_size(m.patch_size)
          .image_size(config.data.image_size)
          .stride(m.patch_stride)
          .centered(config.data.centered)
          .sampling(m.patch_sampling));
}

}  // namespace scorch
