// Data sources: toy 2-D sets, synthetic images, and the HDF5 loader's
// construction from a config (see source.h).
#include "data/source.h"

#include <chrono>

#include "core/compat.h"
#include "core/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/log.h"
#include "data/loader.h"
#include "data/toy2d.h"

namespace scorch {
namespace {

constexpr uint64_t kDataStream = 0xDA7A;

void check_global_batch(int64_t global_batch, const DataPlacement& p) {
  SCORCH_CHECK(global_batch > 0 && global_batch % p.world_size == 0, "training.batch_size=",
               global_batch, " is the global batch and must be a multiple of the number of ranks (",
               p.world_size, ")");
}

// This rank's rows of a global batch.
Batch rank_share(Batch global, const DataPlacement& p) {
  if (p.world_size == 1) return global;
  const int64_t local = global.x.size(0) / p.world_size;
  global.x = global.x.narrow(0, p.rank * local, local).contiguous();
  if (global.labels.defined())
    global.labels = global.labels.narrow(0, p.rank * local, local).contiguous();
  return global;
}

class Toy2DSource : public DataSource {
 public:
  Toy2DSource(Toy2D kind, uint64_t seed, DataPlacement p) : kind_(kind), seed_(seed), p_(p) {}
  Batch next(int64_t batch_size) override {
    check_global_batch(batch_size, p_);
    auto gen = compat::cpu_generator(derive_seed(seed_, kDataStream, cursor_));
    cursor_ += batch_size;
    return rank_share({sample_toy2d(kind_, batch_size, gen), {}}, p_);
  }
  int64_t cursor() const override { return cursor_; }
  void seek(int64_t cursor) override { cursor_ = cursor; }

 private:
  Toy2D kind_;
  uint64_t seed_;
  DataPlacement p_;
  int64_t cursor_ = 0;
};

class SyntheticImageSource : public DataSource {
 public:
  SyntheticImageSource(const Config& c, DataPlacement p)
      : seed_(c.seed),
        channels_(c.data.num_channels),
        size_(c.data.image_size),
        flip_(c.data.random_flip),
        centered_(c.data.centered),
        p_(p) {}
  Batch next(int64_t batch_size) override {
    check_global_batch(batch_size, p_);
    auto gen = compat::cpu_generator(derive_seed(seed_, kDataStream, cursor_));
    cursor_ += batch_size;
    auto batch = synthetic_images(batch_size, channels_, size_, gen);
    if (flip_) {
      auto flip = compat::rand({batch_size, 1, 1, 1}, gen) < 0.5;
      batch.x = torch::where(flip, batch.x.flip({3}), batch.x);
    }
    batch.x = scale_data(batch.x, centered_);
    return rank_share(std::move(batch), p_);
  }
  int64_t cursor() const override { return cursor_; }
  void seek(int64_t cursor) override { cursor_ = cursor; }

 private:
  uint64_t seed_;
  int64_t channels_, size_;
  bool flip_, centered_;
  DataPlacement p_;
  int64_t cursor_ = 0;
};

// Opens data.path and checks it against the config.
std::unique_ptr<DataSource> make_hdf5_source(const Config& c, const DataPlacement& p) {
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<const ShardedDataset> dataset;
  try {
    dataset = std::make_shared<const ShardedDataset>(c.data.path,
                                                     DatasetCheckOptions{c.data.verify_checksums});
  } catch (const Error& e) {
    fail("data.path: " + std::string(e.what()));
  }
  const auto& m = dataset->manifest();
  const std::string where = "data.path '" + c.data.path + "' holds " + m.describe();
  if (m.kind == SampleKind::kImages) {
    SCORCH_CHECK(is_image_data(c), where, " but model.name=", c.model.name,
                 " is for vector data; use ddpm or ncsnpp");
    const int64_t h = m.sample_shape[0], w = m.sample_shape[1], ch = m.sample_shape[2];
    SCORCH_CHECK(h == w, where, "; training needs square images");
    SCORCH_CHECK(h == c.data.image_size && ch == c.data.num_channels, where,
                 " but the config says data.image_size=", c.data.image_size,
                 " data.num_channels=", c.data.num_channels, "; set data.image_size=", h,
                 " data.num_channels=", ch);
  } else {
    SCORCH_CHECK(!is_image_data(c), where, " but model.name=", c.model.name,
                 " is an image network; use model.name=mlp");
    SCORCH_CHECK(m.sample_shape[0] == c.data.dim, where, " but the config says data.dim=",
                 c.data.dim, "; set data.dim=", m.sample_shape[0]);
  }
  if (c.data.num_classes > 0) {
    SCORCH_CHECK(m.has_labels, where, " without labels, but data.num_classes=",
                 c.data.num_classes, " asks for class conditioning; set data.num_classes=0");
    SCORCH_CHECK(c.data.num_classes >= m.num_classes, where, " in ", m.num_classes,
                 " classes but data.num_classes=", c.data.num_classes, "; set data.num_classes=",
                 m.num_classes);
  }
  log_info("dataset ", c.data.path, ": ", m.num_samples, " ", m.describe(), " in ",
           m.shards.size(), " shard(s)", m.has_labels ? ", " + std::to_string(m.num_classes) +
           " classes" : "", c.data.verify_checksums ? ", checksums verified" : "", " (",
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), " s)");
  LoaderOptions o;
  o.seed = c.seed;
  o.rank = p.rank;
  o.world_size = p.world_size;
  o.threads = static_cast<int>(c.data.loader_threads);
  o.prefetch = static_cast<int>(c.data.prefetch_batches);
  o.random_flip = c.data.random_flip;
  o.uniform_dequantization = c.data.uniform_dequantization;
  o.centered = c.data.centered;
  o.pin_memory = p.pin_memory;
  return std::make_unique<ShardedLoader>(std::move(dataset), o);
}

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

std::unique_ptr<DataSource> make_data_source(const Config& c, const DataPlacement& p) {
  switch (c.data.dataset) {
    case DatasetName::kHdf5:
      return make_hdf5_source(c, p);
    case DatasetName::kSyntheticImages:
      return std::make_unique<SyntheticImageSource>(c, p);
    default:
      return std::make_unique<Toy2DSource>(toy2d_kind(c.data.dataset), c.seed, p);
  }
}

torch::Tensor stored_to_unit(const torch::Tensor& images) {
  return images.permute({0, 3, 1, 2}).to(torch::kFloat) / 255.0;
}

torch::Tensor stored_to_model(const torch::Tensor& images, bool centered) {
  return scale_data(stored_to_unit(images), centered);
}

torch::Tensor scale_data(const torch::Tensor& x, bool centered) { return centered ? x * 2 - 1 : x; }

torch::Tensor inverse_scale_data(const torch::Tensor& x, bool centered) {
  return centered ? (x + 1) / 2 : x;
}

}  // namespace scorch
