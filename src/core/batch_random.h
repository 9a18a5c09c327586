// Random draws for one rank's share of a global batch. The losses draw their
// times, noise and projections through this, so that the noise a training
// sample gets depends on its row in the global batch and on (seed, step),
// not on how many ranks or micro-batches the batch is split into: a run on W
// ranks computes the same gradients as one rank with the same global batch.
//
//   BatchRandom rng(seed, step, /*global_rows=*/B, /*offset=*/rank * B / W, /*rows=*/B / W);
//   auto t = rng.uniform({B / W}, x.options());
//   auto z = rng.normal(x.sizes(), x.options());
//
// Draw k of a step is generated for all global rows from a generator of the
// device's type seeded by (seed, kBatchNoiseStream + k, step), and this share
// keeps rows [offset, offset + rows). Each rank thus generates the global
// batch's draws and keeps its share: the price of world-size invariance,
// small next to a network evaluation. LibTorch's default generators are not
// touched, so dropout and other in-network randomness keep their
// (seed, rank, step) streams. A default-constructed BatchRandom draws from
// the default generators (tests, evaluation).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace scorch {

class BatchRandom {
 public:
  BatchRandom() = default;
  // REQUIRES: 0 <= offset, 0 <= rows, offset + rows <= global_rows.
  BatchRandom(uint64_t seed, int64_t step, int64_t global_rows, int64_t offset, int64_t rows);

  // Tensors of `shape`; in the sliced form shape[0] must be `rows`.
  torch::Tensor uniform(at::IntArrayRef shape, const torch::TensorOptions& options);  // U[0, 1)
  torch::Tensor normal(at::IntArrayRef shape, const torch::TensorOptions& options);   // N(0, 1)
  // Integers uniform in [0, high); int64 unless options names a dtype.
  torch::Tensor randint(int64_t high, at::IntArrayRef shape, const torch::TensorOptions& options);

  bool sliced() const { return sliced_; }

 private:
  at::Generator next_generator(const torch::Device& device);
  std::vector<int64_t> global_shape(at::IntArrayRef shape) const;
  torch::Tensor keep_rows(const torch::Tensor& global) const;

  bool sliced_ = false;
  uint64_t seed_ = 0;
  int64_t step_ = 0, global_rows_ = 0, offset_ = 0, rows_ = 0, draws_ = 0;
};

}  // namespace scorch
