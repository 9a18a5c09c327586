// A dataset's summary and preview for `scorch data inspect` (see inspect.h).
#include "data/inspect.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "core/image.h"
#include "data/sharded_dataset.h"

namespace scorch {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxStatsSamples = 10000;

// Features the statistics run over: channels of an image, dimensions of a vector.
int64_t features_of(const Manifest& m) {
  return m.kind == SampleKind::kImages ? m.sample_shape[2] : m.sample_shape[0];
}

std::vector<int64_t> count_classes(const ShardedDataset& d) {
  const Manifest& m = d.manifest();
  std::vector<int64_t> counts(static_cast<size_t>(m.num_classes), 0);
  if (m.has_labels)
    for (int64_t i = 0; i < d.size(); ++i) counts[d.label(i)] += 1;
  return counts;
}

// Mean and standard deviation per feature over up to kMaxStatsSamples evenly
// spaced samples; image pixels scaled to [0, 1].
void sample_statistics(const ShardedDataset& d, DatasetSummary* summary) {
  const Manifest& m = d.manifest();
  const bool images = m.kind == SampleKind::kImages;
  const int64_t feat = features_of(m);
  const int64_t n = std::min<int64_t>(d.size(), kMaxStatsSamples);
  std::vector<uint8_t> raw(static_cast<size_t>(d.sample_bytes()));
  std::vector<torch::Tensor> rows;
  for (int64_t k = 0; k < n; ++k) {
    d.read(k * d.size() / n, raw.data());
    rows.push_back(
        images ? torch::from_blob(raw.data(), {d.sample_bytes() / feat, feat}, torch::kUInt8)
                         .to(torch::kDouble) / 255.0
               : torch::from_blob(raw.data(), {1, feat}, torch::kFloat).to(torch::kDouble));
  }
  const auto all = torch::cat(rows);
  const auto mean = all.mean(0), stddev = all.std(0);
  summary->mean.assign(mean.data_ptr<double>(), mean.data_ptr<double>() + feat);
  summary->stddev.assign(stddev.data_ptr<double>(), stddev.data_ptr<double>() + feat);
  summary->stats_samples = n;
}

// `requested`, or <dataset name>-preview.png if it is empty.
std::string preview_path(const std::string& dir, const std::string& requested) {
  const fs::path normal = fs::path(dir).lexically_normal();
  std::string path = requested.empty() ? normal.filename().string() + "-preview.png" : requested;
  // A dataset path ending in '/' has an empty file name: use the directory's.
  if (path == "-preview.png") path = normal.parent_path().filename().string() + "-preview.png";
  return path;
}

// Writes a grid of the first images or a scatter plot of the first two
// dimensions of the first vectors to `path`. False if there is nothing to
// plot (1-D vectors).
bool write_preview(const ShardedDataset& d, const std::string& path, int64_t num) {
  const Manifest& m = d.manifest();
  const int64_t feat = features_of(m);
  if (m.kind == SampleKind::kImages) {
    const int64_t n = std::min(num, d.size());
    const int64_t h = m.sample_shape[0], w = m.sample_shape[1], c = m.sample_shape[2];
    auto batch = torch::empty({n, h, w, c}, torch::kUInt8);
    for (int64_t i = 0; i < n; ++i) d.read(i, batch[i].data_ptr());
    write_png(path, image_grid(batch.permute({0, 3, 1, 2}).to(torch::kFloat) / 255.0));
    return true;
  }
  if (feat < 2) return false;
  const int64_t n = std::min(num * 50, d.size());
  auto points = torch::empty({n, feat}, torch::kFloat);
  for (int64_t i = 0; i < n; ++i) d.read(i, points[i].data_ptr());
  write_png(path, scatter_plot(points.narrow(1, 0, 2).contiguous()));
  return true;
}

}  // namespace

DatasetSummary inspect_dataset(const std::string& dir, const InspectOptions& options) {
  ShardedDataset d(dir, {/*checksums=*/false});
  DatasetSummary summary;
  summary.dir = dir;
  summary.manifest = d.manifest();
  for (const auto& s : summary.manifest.shards) summary.bytes += s.bytes;
  summary.class_counts = count_classes(d);
  sample_statistics(d, &summary);
  const std::string preview = preview_path(dir, options.preview);
  if (write_preview(d, preview, options.preview_samples)) summary.preview = preview;
  return summary;
}

nlohmann::json to_json(const DatasetSummary& summary) {
  nlohmann::json j = to_json(summary.manifest);
  j.erase("shards");
  j["num_shards"] = summary.manifest.shards.size();
  j["bytes"] = summary.bytes;
  j["class_counts"] = summary.class_counts;
  j["mean"] = summary.mean;
  j["std"] = summary.stddev;
  j["stats_samples"] = summary.stats_samples;
  j["preview"] = summary.preview;
  return j;
}

std::string summary_text(const DatasetSummary& summary) {
  const Manifest& m = summary.manifest;
  const bool images = m.kind == SampleKind::kImages;
  const size_t shown = std::min<size_t>(summary.mean.size(), 16);
  std::ostringstream out;
  out << "dataset      " << summary.dir << " (format " << kShardFormatName << " v"
      << m.format_version << ")\n";
  out << "samples      " << m.num_samples << " " << m.describe() << ", split '" << m.split
      << "'\n";
  out << "shards       " << m.shards.size() << " of up to " << m.shard_size << " samples, "
      << summary.bytes / 1e6 << " MB, compression " << m.compression;
  if (m.compression == "gzip") out << " level " << m.compression_level;
  out << "\nsource       " << m.source << "\ncreated      " << m.created << "\n";
  out << (images ? "pixel mean   " : "mean         ");
  for (size_t k = 0; k < shown; ++k) out << summary.mean[k] << " ";
  out << (images ? "(per channel, [0, 1])" : "") << "\n";
  out << (images ? "pixel std    " : "std          ");
  for (size_t k = 0; k < shown; ++k) out << summary.stddev[k] << " ";
  out << "\n";
  if (m.has_labels) {
    out << "classes      " << m.num_classes << "\n";
    for (int64_t k = 0; k < m.num_classes; ++k) {
      out << "  " << k;
      if (!m.class_names.empty()) out << " " << m.class_names[k];
      out << ": " << summary.class_counts[k] << " ("
          << 100.0 * summary.class_counts[k] / m.num_samples << "%)\n";
    }
  } else {
    out << "labels       none\n";
  }
  if (!summary.preview.empty()) out << "preview      " << summary.preview << "\n";
  return out.str();
}

}  // namespace scorch
