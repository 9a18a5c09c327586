// A dataset's summary for `scorch data inspect`: counts, shape, size on disk,
// class histogram, per-channel (images) or per-dimension (vectors) mean and
// standard deviation, and a PNG preview of its first samples.
//
//   const DatasetSummary s = inspect_dataset("data/cifar10-train", {});
//   std::cout << summary_text(s);  // or to_json(s).dump()
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/shard_format.h"

namespace scorch {

struct InspectOptions {
  // PNG to write; "" = <dataset name>-preview.png in the current directory.
  std::string preview;
  // Images in the preview grid; a scatter plot of vectors shows 50x as many points.
  int64_t preview_samples = 64;
};

struct DatasetSummary {
  std::string dir;  // as given to inspect_dataset
  Manifest manifest;
  int64_t bytes = 0;                  // of all shards together
  std::vector<int64_t> class_counts;  // [num_classes] samples per class; empty without labels
  // Over `stats_samples` evenly spaced samples (at most 10,000): per channel of
  // pixels scaled to [0, 1] for images, per dimension for vectors. [C] or [D].
  std::vector<double> mean, stddev;
  int64_t stats_samples = 0;
  // The PNG written: a grid of the first images, or a scatter plot of the
  // first two dimensions of the first vectors; "" for 1-D vectors (none written).
  std::string preview;
};

// Opens the dataset at `dir` (structure checked, checksums not), computes its
// summary and writes the preview PNG. Throws scorch::Error listing every
// problem of the dataset, or naming the PNG if it cannot be written.
DatasetSummary inspect_dataset(const std::string& dir, const InspectOptions& options);

// The manifest's fields without the shard list, plus num_shards, bytes,
// class_counts, mean, std, stats_samples and preview.
nlohmann::json to_json(const DatasetSummary& summary);

// A human-readable table, one "name   value" line per field ("dataset",
// "samples", "shards", ...), at most 16 entries of mean and std, one line per class.
std::string summary_text(const DatasetSummary& summary);

}  // namespace scorch
