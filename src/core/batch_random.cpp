// Sliced global-batch draws (see batch_random.h).
#include "core/batch_random.h"

#include "core/compat.h"
#include "core/rng.h"

namespace scorch {
namespace {
constexpr uint64_t kBatchNoiseStream = 0xB47C4000;
}

BatchRandom::BatchRandom(uint64_t seed, int64_t step, int64_t global_rows, int64_t offset,
                         int64_t rows)
    : sliced_(true), seed_(seed), step_(step), global_rows_(global_rows), offset_(offset),
      rows_(rows) {
  TORCH_CHECK(offset >= 0 && rows >= 0 && offset + rows <= global_rows, "BatchRandom: rows [",
              offset, ", ", offset + rows, ") outside the global batch of ", global_rows);
}

at::Generator BatchRandom::next_generator(const torch::Device& device) {
  const uint64_t seed = derive_seed(seed_, kBatchNoiseStream + static_cast<uint64_t>(draws_++),
                                    static_cast<uint64_t>(step_));
  if (device.is_cpu()) return compat::cpu_generator(seed);
  // A private generator of the device's type (Philox on CUDA), seeded afresh.
  auto gen = at::globalContext().defaultGenerator(device).clone();
  gen.set_current_seed(seed);
  return gen;
}

std::vector<int64_t> BatchRandom::global_shape(at::IntArrayRef shape) const {
  TORCH_CHECK(!shape.empty() && shape[0] == rows_, "BatchRandom: a draw of shape ", shape,
              " for a share of ", rows_, " rows");
  std::vector<int64_t> out = shape.vec();
  out[0] = global_rows_;
  return out;
}

torch::Tensor BatchRandom::keep_rows(const torch::Tensor& global) const {
  return rows_ == global_rows_ ? global : global.narrow(0, offset_, rows_).contiguous();
}

torch::Tensor BatchRandom::uniform(at::IntArrayRef shape, const torch::TensorOptions& options) {
  if (!sliced_) return torch::rand(shape, options);
  return keep_rows(compat::rand(global_shape(shape), next_generator(options.device()), options));
}

torch::Tensor BatchRandom::normal(at::IntArrayRef shape, const torch::TensorOptions& options) {
  if (!sliced_) return torch::randn(shape, options);
  return keep_rows(compat::randn(global_shape(shape), next_generator(options.device()), options));
}

torch::Tensor BatchRandom::randint(int64_t high, at::IntArrayRef shape,
                                   const torch::TensorOptions& options) {
  const auto opts = options.has_dtype() ? options : options.dtype(torch::kLong);
  if (!sliced_) return torch::randint(0, high, shape, opts);
  return keep_rows(
      compat::randint(0, high, global_shape(shape), next_generator(options.device()), opts));
}

}  // namespace scorch
