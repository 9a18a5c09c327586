// The ZeRO-1 split of parameters into per-rank shards and its two
// collectives (see param_shards.h).
#include "dist/param_shards.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace scorch {
namespace {

// The elements of a dense tensor in memory order, as a 1-D view.
torch::Tensor flat_memory(const torch::Tensor& t) {
  return t.as_strided({t.numel()}, {1}, t.storage_offset());
}

}  // namespace

ParamShards::ParamShards(const std::vector<torch::Tensor>& tensors, int rank, int world,
                         int64_t chunk_bytes)
    : rank_(rank), world_(world) {
  TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "ParamShards: rank ", rank, " of ", world);
  TORCH_CHECK(chunk_bytes > 0, "ParamShards: chunk_bytes must be positive");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    if (i == 0) {
      dtype_ = t.scalar_type();
      device_ = t.device();
    }
    SCORCH_CHECK(t.scalar_type() == dtype_ && t.device() == device_,
                 "dist.shard_state splits the trainable parameters, which must share one dtype "
                 "and device; parameter ", i, " is ", t.scalar_type(), " on ", t.device(),
                 ", the first ", dtype_, " on ", device_, ": set dist.shard_state=none");
    SCORCH_CHECK(t.is_non_overlapping_and_dense(),
                 "dist.shard_state splits parameters by their memory, but parameter ", i,
                 " (shape ", t.sizes(), ") has gaps or overlaps: set dist.shard_state=none");
    offsets_.push_back(numel_);
    numels_.push_back(t.numel());
    sizes_.push_back(t.sizes().vec());
    strides_.push_back(t.strides().vec());
    numel_ += t.numel();
  }
  shard_size_ = (numel_ + world - 1) / world;
  begin_ = std::min(numel_, rank * shard_size_);
  end_ = std::min(numel_, (rank + 1) * shard_size_);
  for (size_t i = 0; i < offsets_.size(); ++i) {
    const int64_t lo = std::max(begin_, offsets_[i]);
    const int64_t hi = std::min(end_, offsets_[i] + numels_[i]);
    local_begin_.push_back(hi > lo ? lo - offsets_[i] : 0);
    local_numel_.push_back(std::max<int64_t>(hi - lo, 0));
  }
  const int64_t element = static_cast<int64_t>(c10::elementSize(dtype_));
  chunk_elements_ = std::max<int64_t>(1, chunk_bytes / element);
}

torch::Tensor ParamShards::local(size_t i, const torch::Tensor& t) const {
  TORCH_CHECK(i < offsets_.size(), "ParamShards: no tensor ", i);
  TORCH_CHECK(t.sizes() == c10::IntArrayRef(sizes_[i]) && t.strides() == c10::IntArrayRef(strides_[i]),
              "ParamShards: tensor ", i, " has sizes ", t.sizes(), " and strides ", t.strides(),
              ", the split was made for ", c10::IntArrayRef(sizes_[i]), " and ",
              c10::IntArrayRef(strides_[i]));
  return flat_memory(t).narrow(0, local_begin_[i], local_numel_[i]);
}

torch::Tensor ParamShards::local_of(size_t i, const torch::Tensor& t) const {
  if (t.strides() == c10::IntArrayRef(strides_[i])) return local(i, t);
  auto copy = torch::empty_strided(sizes_[i], strides_[i], t.options()).copy_(t);
  return local(i, copy);
}

void ParamShards::copy_range(int64_t a, int64_t b, const torch::Tensor& buffer,
                             const std::vector<torch::Tensor>& flat,
                             const std::vector<int64_t>& base, bool into_buffer) const {
  if (a >= b) return;
  // The first tensor that ends after a.
  size_t i = static_cast<size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), a) -
                                 offsets_.begin());
  i = i == 0 ? 0 : i - 1;
  for (; i < offsets_.size() && offsets_[i] < b; ++i) {
    const int64_t lo = std::max(a, offsets_[i]), hi = std::min(b, offsets_[i] + numels_[i]);
    if (lo >= hi || !flat[i].defined()) continue;
    auto part = flat[i].narrow(0, lo - base[i], hi - lo);
    auto slot = buffer.narrow(0, lo - a, hi - lo);
    if (into_buffer)
      slot.copy_(part);
    else
      part.copy_(slot);
  }
}

template <typename Take>
void ParamShards::gather_chunks(const std::vector<torch::Tensor>& flat,
                                const std::vector<int64_t>& base,
                                const torch::TensorOptions& buffer_options, Communicator& comm,
                                Take take) const {
  TORCH_CHECK(comm.size() == world_ && comm.rank() == rank_, "ParamShards: made for rank ", rank_,
              " of ", world_, ", used with rank ", comm.rank(), " of ", comm.size());
  torch::NoGradGuard no_grad;
  for (int64_t k = 0; k < shard_size_; k += chunk_elements_) {
    const int64_t c = std::min(chunk_elements_, shard_size_ - k);
    // Past N (the padding of the last shards) the buffer holds zeros.
    auto mine = torch::zeros({c}, buffer_options);
    copy_range(begin_ + k, std::min(begin_ + k + c, end_), mine, flat, base, true);
    const auto all = world_ > 1 ? comm.all_gather(mine) : mine;  // [W * c]
    for (int q = 0; q < world_; ++q) {
      const int64_t a = std::min(numel_, q * shard_size_ + k);
      const int64_t b = std::min(numel_, q * shard_size_ + k + c);
      if (a < b) take(q, a, b, all.narrow(0, q * c, b - a));
    }
  }
}

void ParamShards::flatten(const std::vector<torch::Tensor>& tensors) const {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(tensors.size() == offsets_.size(), "ParamShards::flatten: ", tensors.size(),
              " tensors, the split has ", offsets_.size());
  // Past N (the last shards' padding) zeros, which all_gather moves as such.
  auto buffer = torch::zeros({world_ * shard_size_}, torch::TensorOptions().dtype(dtype_).device(device_));
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto& t = const_cast<torch::Tensor&>(tensors[i]);
    TORCH_CHECK(t.sizes() == c10::IntArrayRef(sizes_[i]) && t.strides() == c10::IntArrayRef(strides_[i]),
                "ParamShards::flatten: tensor ", i, " is not laid out as the split's");
    // The place's memory order is the tensor's: copy element i of memory to
    // element i of the place, then make the place the tensor.
    buffer.narrow(0, offsets_[i], numels_[i]).copy_(flat_memory(t));
    t.set_data(buffer.as_strided(sizes_[i], strides_[i], offsets_[i]));
  }
}

torch::Tensor ParamShards::flattened(const std::vector<torch::Tensor>& tensors) const {
  if (tensors.empty() || world_ * shard_size_ == 0) return {};
  const auto& first = tensors.front();
  const int64_t base = first.storage_offset() - offsets_[0];
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    if (!t.storage().is_alias_of(first.storage()) || t.storage_offset() != base + offsets_[i] ||
        t.sizes() != c10::IntArrayRef(sizes_[i]) || t.strides() != c10::IntArrayRef(strides_[i]))
      return {};
  }
  const auto element = static_cast<int64_t>(c10::elementSize(dtype_));
  if (base < 0 || static_cast<int64_t>(first.storage().nbytes()) < (base + world_ * shard_size_) * element)
    return {};
  return first.as_strided({world_ * shard_size_}, {1}, base);
}

void ParamShards::all_gather(const std::vector<torch::Tensor>& tensors, Communicator& comm) const {
  torch::NoGradGuard no_grad;  // parameters are written in place
  TORCH_CHECK(tensors.size() == offsets_.size(), "ParamShards::all_gather: ", tensors.size(),
              " tensors, the split has ", offsets_.size());
  TORCH_CHECK(comm.size() == world_ && comm.rank() == rank_, "ParamShards: made for rank ", rank_,
              " of ", world_, ", used with rank ", comm.rank(), " of ", comm.size());
  // Laid out by flatten(), with a shard MPI can count in bytes: in place, at once.
  auto whole = flattened(tensors);
  if (whole.defined() && shard_size_ * static_cast<int64_t>(c10::elementSize(dtype_)) <
                             std::numeric_limits<int>::max()) {
    if (world_ > 1) comm.all_gather_into(whole, whole.narrow(0, rank_ * shard_size_, shard_size_));
    return;
  }
  std::vector<torch::Tensor> flat;
  for (size_t i = 0; i < tensors.size(); ++i) {
    TORCH_CHECK(tensors[i].strides() == c10::IntArrayRef(strides_[i]) &&
                    tensors[i].sizes() == c10::IntArrayRef(sizes_[i]),
                "ParamShards::all_gather: tensor ", i, " is not laid out as the split's");
    flat.push_back(flat_memory(tensors[i]));
  }
  gather_chunks(flat, offsets_, torch::TensorOptions().dtype(dtype_).device(device_), comm,
                [&](int q, int64_t a, int64_t b, const torch::Tensor& data) {
                  if (q != rank_) copy_range(a, b, data, flat, offsets_, false);
                });
}

std::vector<torch::Tensor> ParamShards::gather_to_root(const std::vector<torch::Tensor>& pieces,
                                                       torch::ScalarType dtype,
                                                       Communicator& comm, int root) const {
  TORCH_CHECK(pieces.size() == offsets_.size(), "ParamShards::gather_to_root: ", pieces.size(),
              " pieces, the split has ", offsets_.size());
  std::vector<int64_t> piece_base;
  for (size_t i = 0; i < pieces.size(); ++i) {
    TORCH_CHECK(!pieces[i].defined() || pieces[i].numel() == local_numel_[i],
                "ParamShards::gather_to_root: piece ", i, " has ", pieces[i].numel(),
                " elements, this rank's part has ", local_numel_[i]);
    piece_base.push_back(offsets_[i] + local_begin_[i]);
  }
  std::vector<torch::Tensor> whole, whole_flat;
  if (rank_ == root) {
    for (size_t i = 0; i < pieces.size(); ++i) {
      whole.push_back(torch::empty_strided(sizes_[i], strides_[i], torch::dtype(dtype)));
      whole_flat.push_back(flat_memory(whole.back()));
    }
  }
  gather_chunks(pieces, piece_base, torch::TensorOptions().dtype(dtype).device(device_), comm,
                [&](int, int64_t a, int64_t b, const torch::Tensor& data) {
                  if (rank_ == root) copy_range(a, b, data.cpu(), whole_flat, offsets_, false);
                });
  return whole;
}

}  // namespace scorch
