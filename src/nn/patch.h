// Patch-based score models: the network is trained on random square crops
// of the images with two coordinate channels telling it where each crop lies
// (Wang et al. 2023, "Patch Diffusion: Faster and More Data-Efficient
// Training of Diffusion Models", Sec. 3; the channels as in Liu et al. 2018,
// CoordConv), and the score of a whole image is assembled from it.
//
//   auto net = make_patch_score_net(config, inner);   // inner takes C + 2 channels
//   Patches p = random_patches(images, 16, rng);       // training: crops + origins
//   { PatchOriginsScope scope(*net, p.origins); loss(*net, p.x); }
//   auto s = net->forward(x_full, t);                  // sampling: tiles, averaged
//
// Coordinates: for an S x S image, channel 0 holds the column and channel 1
// the row, linspace(-1, 1, S) (-1 at the first pixel, 1 at the last); a
// patch carries the coordinates of the pixels it was cut from. (For
// uncentered data they are stored in [0, 1] and mapped like the data.)
//
// Sampling (PatchSampling):
//   kTiles: the image is covered by P x P tiles at stride `stride` along each
//           axis (the last tile flush with the far edge), the network scores
//           every tile in one batch, and overlapping outputs are averaged per
//           pixel. Costs tiles^2 network evaluations on patches per step.
//   kFull:  the network, being convolutional, scores the whole S x S image
//           with the whole image's coordinate channels in one evaluation
//           (Patch Diffusion's sampler); attention and GroupNorm then see
//           more positions than in training.
#pragma once

#include "core/choices.h"
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/batch_random.h"
#include "nn/score_net.h"

namespace scorch {


struct PatchOptions {
  TORCH_ARG(int64_t, patch_size) = 16;
  TORCH_ARG(int64_t, image_size) = 32;
  TORCH_ARG(int64_t, stride) = 0;  // tiles' stride; 0: patch_size / 2
  TORCH_ARG(PatchSampling, sampling) = PatchSampling::kTiles;
  // The inner network's input convention (data.centered): false means it maps
  // its input x to 2x - 1, so the coordinates are given as (c + 1) / 2 and
  // reach its layers in [-1, 1] like centered data's.
  TORCH_ARG(bool, centered) = true;
};

// [2, S, S] coordinate channels of an S x S image (see above).
torch::Tensor coordinate_channels(int64_t image_size, const torch::TensorOptions& options);

// Tile starts along one axis: 0, stride, 2 stride, ... while the tile fits,
// then S - P if the last tile did not reach the edge. REQUIRES: 0 < P <= S,
// 0 < stride <= P.
std::vector<int64_t> tile_starts(int64_t image_size, int64_t patch_size, int64_t stride);

struct Patches {
  torch::Tensor x;        // [B, C, P, P]
  torch::Tensor origins;  // [B, 2] int64: (row, column) of each crop's top-left pixel
};

// Crops of `patch_size` at the given origins. images [B, C, S, S]; origins [B, 2].
torch::Tensor crop_patches(const torch::Tensor& images, const torch::Tensor& origins,
                           int64_t patch_size);

// One uniformly placed crop per image: origin row and column uniform in
// [0, S - P], drawn from `rng` (so per global sample in training).
Patches random_patches(const torch::Tensor& images, int64_t patch_size, BatchRandom& rng);

class PatchScoreNetImpl : public ScoreNetImpl {
 public:
  // `inner` maps [N, C + 2, P, P] (image channels, then coordinates) to
  // [N, C, P, P]; registered as child "net".
  PatchScoreNetImpl(ScoreNet inner, const PatchOptions& options);

  // With patch origins set (training): x [B, C, P, P] patches at those
  // origins; k B rows (a loss that tiles its batch k times, e.g. sliced
  // score matching) reuse them k times. Without: x [B, C, S, S] whole
  // images, scored as options().sampling says. Returns x's shape.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                        const torch::Tensor& class_labels = {}) override;

  // The origins [B, 2] int64 of the patches the following forward calls get;
  // undefined to score whole images. Not thread-safe: one batch at a time.
  void set_patch_origins(torch::Tensor origins) { origins_ = std::move(origins); }
  const torch::Tensor& patch_origins() const { return origins_; }

  const PatchOptions& options() const { return options_; }
  ScoreNet inner() const { return inner_; }

 private:
  torch::Tensor score_patches(const torch::Tensor& x, const torch::Tensor& origins,
                              const torch::Tensor& time_cond, const torch::Tensor& class_labels);
  torch::Tensor score_tiles(const torch::Tensor& x, const torch::Tensor& time_cond,
                            const torch::Tensor& class_labels);
  torch::Tensor coordinates(const torch::TensorOptions& options) const;  // [2, S, S]

  PatchOptions options_;
  ScoreNet inner_;
  torch::Tensor origins_;
};

// Sets a PatchScoreNet's patch origins for its lifetime (no-op for any
// other network) and clears them after.
class PatchOriginsScope {
 public:
  PatchOriginsScope(ScoreNetImpl& net, torch::Tensor origins);
  ~PatchOriginsScope();
  PatchOriginsScope(const PatchOriginsScope&) = delete;
  PatchOriginsScope& operator=(const PatchOriginsScope&) = delete;

 private:
  PatchScoreNetImpl* net_;
};

struct Config;

// model.patch_size / patch_stride / patch_sampling and data.image_size around `inner`.
ScoreNet make_patch_score_net(const Config& config, ScoreNet inner);

}  // namespace scorch
