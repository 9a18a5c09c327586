// A sharded dataset opened for reading (format: shard_format.h): one global
// index 0..N-1 over all shards in manifest order. Opening checks every shard
// against the manifest (presence, size, optional SHA-256, HDF5 structure,
// dtype, rank, shape, counts, label range) and reports every problem found.
// Reads bypass HDF5's library lock: at open, the file offset of each sample's
// chunk is looked up once (H5Dget_chunk_info_by_coord); read() is then one
// pread (plus inflate for gzip shards), safe from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/shard_format.h"

namespace scorch {

struct DatasetCheckOptions {
  bool checksums = true;  // hash every shard against the manifest's SHA-256
  bool progress = false;  // a progress bar over the shards on stderr (core/progress.h)
};

// Every problem of the dataset at `dir`, each naming the file; empty if none.
// The manifest (as far as it could be read) is stored in *manifest if given.
std::vector<std::string> check_dataset(const std::string& dir, const DatasetCheckOptions& options,
                                       Manifest* manifest = nullptr);

class ShardedDataset {
 public:
  // Opens and checks the dataset; throws scorch::Error listing every problem.
  explicit ShardedDataset(const std::string& dir, const DatasetCheckOptions& options = {});
  ~ShardedDataset();
  ShardedDataset(const ShardedDataset&) = delete;
  ShardedDataset& operator=(const ShardedDataset&) = delete;

  const Manifest& manifest() const;
  const std::string& dir() const;
  int64_t size() const;          // samples
  int64_t sample_bytes() const;  // bytes of one sample (H*W*C uint8 or 4*D)

  // Copies sample `index`'s bytes (HWC uint8 or D float32) to dst[0, sample_bytes).
  // Thread-safe. Throws scorch::Error naming the shard if the read fails.
  void read(int64_t index, void* dst) const;
  // Its label, or -1 for a dataset without labels. Thread-safe.
  int64_t label(int64_t index) const;
  // Samples [first, first + count) as stored: uint8 [n, H, W, C] or float32 [n, D].
  torch::Tensor read_range(int64_t first, int64_t count) const;

  struct Shard;

 private:
  friend std::vector<std::string> check_dataset(const std::string&, const DatasetCheckOptions&,
                                                Manifest*);
  ShardedDataset() = default;
  std::vector<std::string> open(const std::string& dir, const DatasetCheckOptions& options);

  std::string dir_;
  Manifest manifest_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<int64_t> shard_of_;  // first_index of each shard, for binary search
};

}  // namespace scorch
