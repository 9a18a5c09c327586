// ZeRO stage 1 (Rajbhandari et al. 2020, "ZeRO: memory optimizations toward
// training trillion parameter models", §5.1): the trainable parameters'
// elements, each tensor flattened in memory order and all of them laid end
// to end, split into W contiguous shards of S = ceil(N / W) elements (the
// last shard shorter, or empty), one per rank. A rank keeps optimizer and
// EMA state only for the elements of its shard (dist.shard_state) and
// updates only those; all_gather() then hands every rank's updated elements
// to every rank. The split depends only on the tensors' sizes, so every rank
// computes the same one and any world size reads the whole-tensor state of a
// checkpoint.
//
//   ParamShards shards(optimizer.params(), ctx.rank, ctx.world_size);
//   auto m = torch::zeros({shards.local_numel(i)});  // state for tensor i's part
//   shards.local(i, param).add_(...);                // update that part in place
//   shards.all_gather(params, comm);                 // every rank: every part
//
// Collectives go through chunks of at most `chunk_bytes` per rank (a
// transient buffer of W chunks), in the same order on every rank.
// Immutable after construction: safe to share between the optimizer and EMA.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "dist/communicator.h"

namespace scorch {

class ParamShards {
 public:
  // The split of `tensors` (their sizes, strides, dtype and device; the
  // tensors themselves are not kept) among `world` ranks, seen from `rank`.
  // Throws scorch::Error naming dist.shard_state unless every tensor is
  // dense (no gaps or overlaps in memory) and all share one dtype and device.
  ParamShards(const std::vector<torch::Tensor>& tensors, int rank, int world,
              int64_t chunk_bytes = 25 << 20);

  int rank() const { return rank_; }
  int world() const { return world_; }
  int64_t numel() const { return numel_; }            // N: all tensors' elements
  int64_t shard_size() const { return shard_size_; }  // S = ceil(N / W)
  // This rank's elements: [shard_begin, shard_end) of the N.
  int64_t shard_begin() const { return begin_; }
  int64_t shard_end() const { return end_; }
  size_t size() const { return offsets_.size(); }  // number of tensors

  // Tensor i's elements in this rank's shard: [local_begin(i), +local_numel(i))
  // of its memory-order flat view; local_numel is 0 when none are.
  int64_t local_begin(size_t i) const { return local_begin_[i]; }
  int64_t local_numel(size_t i) const { return local_numel_[i]; }
  // Elements of all tensors in this rank's shard: shard_end - shard_begin.
  int64_t local_total() const { return end_ - begin_; }

  // That part of `t` as a 1-D view (writes reach `t`). REQUIRES: `t` has
  // tensor i's sizes and strides (a parameter, its gradient, a copy made
  // with empty_strided).
  torch::Tensor local(size_t i, const torch::Tensor& t) const;
  // The same part of a whole tensor of any layout with tensor i's sizes (a
  // checkpoint entry): a view when the strides match, else a copy, on `t`'s
  // device.
  torch::Tensor local_of(size_t i, const torch::Tensor& t) const;

  // Moves `tensors` (the split's, e.g. the parameters) into one buffer of
  // W * S elements, laid end to end in the split's order, each keeping its
  // values, sizes and strides (set_data: modules and optimizers holding them
  // see the move). Rank q's shard is then elements [q * S, (q + 1) * S) of
  // that buffer, so all_gather() gathers into it in place: one collective,
  // no copy per tensor.
  void flatten(const std::vector<torch::Tensor>& tensors) const;

  // Collective: every rank's part of `tensors` (tensor i: its sizes and
  // strides, the dtype and device given at construction) written into every
  // other rank's `tensors`, in place. Tensors laid out by flatten() are
  // gathered by one in-place collective (Communicator::all_gather_into);
  // others through chunks of the flat index space, copied per tensor.
  void all_gather(const std::vector<torch::Tensor>& tensors, Communicator& comm) const;

  // Collective: whole tensors assembled from every rank's `pieces` (piece i:
  // local_numel(i) elements as local() returns them, or undefined, which
  // sends zeros), as CPU tensors of `dtype` with tensor i's sizes and
  // strides on rank `root`; an empty vector on the other ranks.
  std::vector<torch::Tensor> gather_to_root(const std::vector<torch::Tensor>& pieces,
                                            torch::ScalarType dtype, Communicator& comm,
                                            int root = 0) const;

 private:
  // Copies the elements [a, b) of the flat index space between `buffer`
  // (buffer[0] is element a) and `flat` (flat[i] is a 1-D tensor whose first
  // element is element base[i]; undefined ones are skipped).
  void copy_range(int64_t a, int64_t b, const torch::Tensor& buffer,
                  const std::vector<torch::Tensor>& flat, const std::vector<int64_t>& base,
                  bool into_buffer) const;
  // The W * S elements of `tensors` as one 1-D view when flatten() laid
  // them out (every tensor at its place in one storage); undefined if not.
  torch::Tensor flattened(const std::vector<torch::Tensor>& tensors) const;
  // Every rank's elements of `flat` to every rank in chunks: `take(q, a, b,
  // data)` gets rank q's elements [a, b) (data[0] is element a).
  template <typename Take>
  void gather_chunks(const std::vector<torch::Tensor>& flat, const std::vector<int64_t>& base,
                     const torch::TensorOptions& buffer_options, Communicator& comm,
                     Take take) const;

  int rank_, world_;
  int64_t numel_ = 0, shard_size_ = 0, begin_ = 0, end_ = 0, chunk_elements_ = 1;
  std::vector<int64_t> offsets_;  // tensor i's first element in the flat index space
  std::vector<int64_t> numels_, local_begin_, local_numel_;
  std::vector<std::vector<int64_t>> sizes_, strides_;
  torch::ScalarType dtype_ = torch::kFloat;
  torch::Device device_ = torch::kCPU;
};

}  // namespace scorch
