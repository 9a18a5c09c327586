// Multi-tensor kernels in cache-sized chunks. On CUDA one _foreach_* call
// covers every parameter in one launch (or a few). On the CPU the same call
// loops over its tensors, so an update of eight such calls streams all the
// parameters through memory eight times; cut into chunks of about 4 MB it
// runs each chunk's eight passes while the chunk is in cache (bench_step,
// tests/README.md: a DDPM++ update 2.7x faster than one chunk and 1.5x
// faster than per tensor on one CPU thread).
// Elementwise kernels give the same bits however the list is cut.
//
//   for (auto [b, e] : chunk_ranges(params, chunk_elements(device)))
//     torch::_foreach_mul_(slice(m, b, e), beta1);
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace scorch {

namespace detail {
inline thread_local int64_t chunk_override = -1;
}

// The chunk size in elements for tensors on `device`: 1 << 20 on the CPU,
// 0 (one chunk) on CUDA; inside a ChunkElementsScope, the scope's.
inline int64_t chunk_elements(const torch::Device& device) {
  if (detail::chunk_override >= 0) return detail::chunk_override;
  return device.is_cuda() ? 0 : 1 << 20;
}

// For benchmarks and tests (this thread): chunks of `elements` (0: one chunk)
// on every device while alive, e.g. the CUDA cut measured on the CPU.
class ChunkElementsScope {
 public:
  explicit ChunkElementsScope(int64_t elements) : saved_(detail::chunk_override) {
    detail::chunk_override = elements;
  }
  ~ChunkElementsScope() { detail::chunk_override = saved_; }
  ChunkElementsScope(const ChunkElementsScope&) = delete;
  ChunkElementsScope& operator=(const ChunkElementsScope&) = delete;

 private:
  int64_t saved_;
};

// Consecutive ranges [begin, end) of `tensors`, each of at most `budget`
// elements in all or a single tensor; budget <= 0: one range of all.
inline std::vector<std::pair<size_t, size_t>> chunk_ranges(const std::vector<torch::Tensor>& tensors,
                                                           int64_t budget) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t begin = 0;
  int64_t elements = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t n = tensors[i].numel();
    if (budget > 0 && i > begin && elements + n > budget) {
      out.emplace_back(begin, i);
      begin = i;
      elements = 0;
    }
    elements += n;
  }
  if (begin < tensors.size()) out.emplace_back(begin, tensors.size());
  return out;
}

// tensors[begin, end) as a list of their own (the tensors are shared).
inline std::vector<torch::Tensor> slice(const std::vector<torch::Tensor>& tensors, size_t begin,
                                        size_t end) {
  return {tensors.begin() + static_cast<std::ptrdiff_t>(begin),
          tensors.begin() + static_cast<std::ptrdiff_t>(end)};
}

}  // namespace scorch
