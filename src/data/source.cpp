// Built-in data sources: toy 2-D sets and synthetic images (see source.h).
#include "data/source.h"

#include "core/compat.h"
#include "core/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/toy2d.h"

namespace scorch {
namespace {

constexpr uint64_t kDataStream = 0xDA7A;

class Toy2DSource : public DataSource {
 public:
  Toy2DSource(Toy2D kind, uint64_t seed) : kind_(kind), seed_(seed) {}
  Batch next(int64_t batch_size) override {
    auto gen = compat::cpu_generator(derive_seed(seed_, kDataStream, cursor_));
    cursor_ += batch_size;
    return {sample_toy2d(kind_, batch_size, gen), {}};
  }
  int64_t cursor() const override { return cursor_; }
  void seek(int64_t cursor) override { cursor_ = cursor; }

 private:
  Toy2D kind_;
  uint64_t seed_;
  int64_t cursor_ = 0;
};

class SyntheticImageSource : public DataSource {
 public:
  SyntheticImageSource(const Config& c)
      : seed_(c.seed),
        channels_(c.data.num_channels),
        size_(c.data.image_size),
        flip_(c.data.random_flip) {}
  Batch next(int64_t batch_size) override {
    auto gen = compat::cpu_generator(derive_seed(seed_, kDataStream, cursor_));
    cursor_ += batch_size;
    auto batch = synthetic_images(batch_size, channels_, size_, gen);
    if (flip_) {
      auto flip = compat::rand({batch_size, 1, 1, 1}, gen) < 0.5;
      batch.x = torch::where(flip, batch.x.flip({3}), batch.x);
    }
    return batch;
  }
  int64_t cursor() const override { return cursor_; }
  void seek(int64_t cursor) override { cursor_ = cursor; }

 private:
  uint64_t seed_;
  int64_t channels_, size_;
  bool flip_;
  int64_t cursor_ = 0;
};

}  // namespace

Batch synthetic_images(int64_t n, int64_t channels, int64_t size, at::Generator gen) {
  auto coords = (torch::arange(size, torch::kFloat) + 0.5) / size;  // [S]
  auto yy = coords.view({1, 1, size, 1}), xx = coords.view({1, 1, 1, size});
  // Per-image, per-channel linear gradients.
  auto a = compat::rand({n, channels, 1, 1}, gen), b = compat::rand({n, channels, 1, 1}, gen);
  auto c = compat::rand({n, channels, 1, 1}, gen);
  auto img = (0.2 + 0.3 * (a * xx + b * yy) + 0.2 * c).clamp(0, 1);
  // A bright disc in a random quadrant: the label.
  auto quadrant = compat::randint(0, 4, {n}, gen);
  auto cx = (0.25 + 0.5 * (quadrant % 2).to(torch::kFloat)).view({n, 1, 1, 1});
  auto cy = (0.25 + 0.5 * (quadrant / 2).to(torch::kFloat)).view({n, 1, 1, 1});
  auto disc = ((xx - cx).pow(2) + (yy - cy).pow(2) < 0.04).to(torch::kFloat);
  img = img * (1 - disc) + 0.95 * disc;
  return {img.contiguous(), quadrant};
}

std::unique_ptr<DataSource> make_data_source(const Config& c) {
  if (!is_image_data(c))
    return std::make_unique<Toy2DSource>(toy2d_from_name(c.data.dataset), c.seed);
  if (c.data.dataset == "synthetic_images") return std::make_unique<SyntheticImageSource>(c);
  fail("data.dataset '" + c.data.dataset +
       "' needs the HDF5 dataset loader, which this build does not have yet; use a toy 2-D "
       "dataset or synthetic_images");
}

torch::Tensor scale_data(const torch::Tensor& x, bool centered) { return centered ? x * 2 - 1 : x; }

torch::Tensor inverse_scale_data(const torch::Tensor& x, bool centered) {
  return centered ? (x + 1) / 2 : x;
}

}  // namespace scorch
