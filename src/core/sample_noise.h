// Gaussian noise for samplers, optionally drawn per sample. Outside a
// PerSampleNoise scope these are torch::randn / randn_like on LibTorch's
// default generator (seeded by seed_streams). Inside one, row i of every draw
// comes from a generator of its own, seeded by (seed, first + i): a sample
// then depends only on its index, not on the batch it is drawn in, the batch
// size or the number of ranks that share the work. `scorch eval` uses this so
// that 50,000 samples are the same images on 1 or 64 GPUs.
//
//   PerSampleNoise scope(seed, /*first=*/1000, /*count=*/250);
//   auto x = sampler(250);  // images 1000..1249 of the seed's sequence
//
// Samplers call sample_randn / sample_randn_like for every noise draw over a
// batch dimension; their first dimension must be the scope's count.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace scorch {

// N(0, I) of `shape` = [B, ...] with `options`' device and dtype.
torch::Tensor sample_randn(at::IntArrayRef shape, const torch::TensorOptions& options);
// N(0, I) shaped like x ([B, ...]), on x's device and dtype.
torch::Tensor sample_randn_like(const torch::Tensor& x);

// While alive (on this thread), sample_randn draws row i of a batch of
// `count` rows from generator (seed, first + i). Scopes do not nest.
// Not thread-safe across threads sharing a scope; each thread has its own.
class PerSampleNoise {
 public:
  PerSampleNoise(uint64_t seed, int64_t first, int64_t count);
  ~PerSampleNoise();
  PerSampleNoise(const PerSampleNoise&) = delete;
  PerSampleNoise& operator=(const PerSampleNoise&) = delete;

  // [count, rest...] float32 on the CPU, one row per generator, filled in
  // parallel; in page-locked memory when `pinned` (for a copy to a GPU that
  // does not block the host; needs a CUDA build).
  torch::Tensor draw(at::IntArrayRef shape, bool pinned = false);

 private:
  std::vector<at::Generator> generators_;
};

}  // namespace scorch
