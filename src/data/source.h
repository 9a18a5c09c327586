// Training data sources: an endless, resumable stream of global batches whose
// position is a cursor counted in global samples; each rank receives its
// equal share of every global batch. The built-in sources (toy 2-D sets,
// synthetic images) draw the global batch at cursor c from a generator seeded
// by (seed, c) and hand each rank its slice; the HDF5 loader (loader.h)
// reads the same kind of stream from sharded datasets. Either way the stream
// depends on neither the number of ranks nor threads, so a resumed run, on
// any number of ranks, continues it exactly.
#pragma once

#include <torch/torch.h>

#include <memory>

namespace scorch {

struct Config;

struct Batch {
  // [b, D] float32 vectors, or [b, C, H, W] float32 images scaled as the
  // model sees them: [-1, 1] with data.centered, else [0, 1].
  torch::Tensor x;
  torch::Tensor labels;  // [B] int64, or undefined when the data has no labels
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  // This rank's share (global_batch_size / world size samples) of the next
  // global batch; advances the cursor by global_batch_size.
  virtual Batch next(int64_t global_batch_size) = 0;
  // Global samples consumed so far.
  virtual int64_t cursor() const = 0;
  // Continue from a cursor saved in a checkpoint.
  virtual void seek(int64_t cursor) = 0;
};

// Where this process sits among the ranks, and whether batches should be
// page-locked for asynchronous copies to a GPU.
struct DataPlacement {
  int rank = 0;
  int world_size = 1;
  bool pin_memory = false;
};

// data.dataset: a toy 2-D set, synthetic_images, or hdf5 (data.path). For
// hdf5, opens and checks the dataset (data.verify_checksums) and checks that
// it agrees with the config (kind, image size, channels, dim, classes).
// Throws scorch::Error naming the key or file at fault, including when
// training.batch_size is not a multiple of the world size.
std::unique_ptr<DataSource> make_data_source(const Config& config,
                                             const DataPlacement& placement = {});

// Synthetic images for tests and smoke runs: smooth random colour gradients
// with a bright disc, [n, C, H, W] in [0, 1], labels = disc quadrant (0..3).
Batch synthetic_images(int64_t n, int64_t channels, int64_t size, at::Generator gen);

// score_sde's scaler: x in [0, 1] -> 2x - 1 if centered; identity for vectors.
torch::Tensor scale_data(const torch::Tensor& x, bool centered);
torch::Tensor inverse_scale_data(const torch::Tensor& x, bool centered);

// Stored images, uint8 [N, H, W, C], as float32 [N, C, H, W] in [0, 1]
// (k / 255); with stored_to_model also scaled as the model sees data.
torch::Tensor stored_to_unit(const torch::Tensor& images);
torch::Tensor stored_to_model(const torch::Tensor& images, bool centered);

}  // namespace scorch
