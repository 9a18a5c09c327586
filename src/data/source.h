// Training data sources: an endless, resumable stream of batches whose
// position is a cursor counted in global samples. The built-in sources (toy
// 2-D sets, synthetic images) draw batch k from a generator seeded by
// (seed, cursor), so a resumed run continues the same stream; the HDF5
// loader implements the same interface over sharded datasets.
#pragma once

#include <torch/torch.h>

#include <memory>

namespace scorch {

struct Config;

struct Batch {
  torch::Tensor x;       // [B, D] float32 vectors, or [B, C, H, W] float32 images in [0, 1]
  torch::Tensor labels;  // [B] int64, or undefined when the data has no labels
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  // The next `batch_size` samples; advances the cursor by batch_size.
  virtual Batch next(int64_t batch_size) = 0;
  // Global samples consumed so far.
  virtual int64_t cursor() const = 0;
  // Continue from a cursor saved in a checkpoint.
  virtual void seek(int64_t cursor) = 0;
};

// data.dataset: a toy 2-D set or synthetic_images (hdf5 lands with the loader).
std::unique_ptr<DataSource> make_data_source(const Config& config);

// Synthetic images for tests and smoke runs: smooth random colour gradients
// with a bright disc, [n, C, H, W] in [0, 1], labels = disc quadrant (0..3).
Batch synthetic_images(int64_t n, int64_t channels, int64_t size, at::Generator gen);

// score_sde's scaler: x in [0, 1] -> 2x - 1 if centered; identity for vectors.
torch::Tensor scale_data(const torch::Tensor& x, bool centered);
torch::Tensor inverse_scale_data(const torch::Tensor& x, bool centered);

}  // namespace scorch
