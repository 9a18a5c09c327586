// Internal to data_tools/: one converter per source format (idx.cpp,
// cifar.cpp, folder.cpp, npy.cpp) and what they share (convert.cpp): the
// writer plus progress bar every converter streams into, and small helpers.
// convert_dataset() (convert.h) checks the common options, then dispatches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/progress.h"
#include "data/shard_writer.h"
#include "data_tools/convert.h"

namespace scorch::data_tools {

// Each throws scorch::Error naming the input file and the problem.
// REQUIRES: options checked by convert_dataset (split, limit, input exists).
Manifest convert_idx(const ConvertOptions& options);
Manifest convert_cifar(const ConvertOptions& options);
Manifest convert_folder(const ConvertOptions& options);
Manifest convert_npy(const ConvertOptions& options);

// What a converter knows about its output before the first sample.
struct DatasetSpec {
  SampleKind kind = SampleKind::kImages;
  std::vector<int64_t> sample_shape;     // images [H, W, C]; vectors [D]
  int64_t num_classes = 0;               // 0: no labels
  std::vector<std::string> class_names;  // empty or num_classes names
  std::string source;                    // "idx:/abs/path", recorded in the manifest
  int64_t total = 0;                     // samples to be written (progress bar), 0 = unknown
};

// The ShardWriter of one conversion (split, shard size, gzip, overwrite from
// the options) plus its progress bar. Destroying it before finish() leaves
// nothing at options.out (ShardWriter's guarantee). Not thread-safe.
class DatasetSink {
 public:
  DatasetSink(const ConvertOptions& options, const DatasetSpec& spec);
  // image: H*W*C bytes, HWC; vector: D floats. label: -1 without labels.
  void add(const uint8_t* image, int64_t label);
  void add(const float* vector, int64_t label);
  Manifest finish();

 private:
  ShardWriter writer_;
  std::unique_ptr<ProgressBar> bar_;
};

// Samples to convert out of `available`: all, or the first options.limit.
int64_t samples_to_convert(const ConvertOptions& options, int64_t available);

// The absolute, normalised form of `path` (for messages and manifests).
std::string absolute_path(const std::string& path);

// Non-empty lines of a text file with surrounding whitespace trimmed (class
// name lists such as CIFAR's batches.meta.txt). Throws if unreadable.
std::vector<std::string> read_name_lines(const std::string& path);

// 0 for no labels, else max(labels) + 1. REQUIRES: labels >= 0.
int64_t num_classes_of(const std::vector<int64_t>& labels);

}  // namespace scorch::data_tools
