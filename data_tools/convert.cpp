// Dispatch of `scorch data convert` (convert.h) and the pieces every
// converter shares (converters.h): option checks, the writer with its
// progress bar, and small path and text helpers.
#include "data_tools/convert.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data_tools/converters.h"

namespace scorch::data_tools {
namespace fs = std::filesystem;

Manifest convert_dataset(const ConvertOptions& options) {
  const auto& o = options;
  SCORCH_CHECK(!o.input.empty(), "--input is empty: name the file or directory to convert");
  SCORCH_CHECK(!o.out.empty(), "--out is empty: name the dataset directory to create");
  std::error_code ec;
  SCORCH_CHECK(fs::exists(o.input, ec), "input '", o.input, "' does not exist");
  SCORCH_CHECK(o.split == "train" || o.split == "test", "--split '", o.split,
               "' is not 'train' or 'test'");
  SCORCH_CHECK(o.limit >= 0, "--limit must be >= 0 (0 = all samples), got ", o.limit);
  SCORCH_CHECK(o.image_size >= 0, "--image-size must be >= 0 (0 = keep), got ", o.image_size);
  SCORCH_CHECK(o.image_size == 0 || o.from == "folder",
               "--image-size applies to --from folder only (got --from ", o.from, ")");
  SCORCH_CHECK(o.labels.empty() || o.from == "npy" || o.from == "idx",
               "--labels applies to --from npy and idx only (got --from ", o.from, ")");
  SCORCH_CHECK((o.images_key.empty() && o.labels_key.empty()) || o.from == "npy",
               "--images-key and --labels-key apply to --from npy (.npz archives) only");
  SCORCH_CHECK(o.labels.empty() || fs::is_regular_file(o.labels, ec), "labels file '", o.labels,
               "' does not exist or is not a file");
  // The writer renames its temporary directory over `out` (moving an old
  // dataset aside and deleting it): the input must not lie inside `out`.
  const auto in_abs = fs::path(absolute_path(o.input)), out_abs = fs::path(absolute_path(o.out));
  const bool input_inside_out =
      std::mismatch(out_abs.begin(), out_abs.end(), in_abs.begin(), in_abs.end()).first ==
      out_abs.end();
  SCORCH_CHECK(!input_inside_out, "input '", o.input, "' lies inside --out '", o.out,
               "', which the conversion replaces; choose another --out");
  // --overwrite replaces a dataset, never a directory that merely happens to
  // be named (--out . or --out ~ would otherwise be moved aside and deleted).
  if (o.overwrite && fs::exists(out_abs, ec))
    SCORCH_CHECK(fs::is_directory(out_abs, ec) &&
                     (fs::exists(out_abs / kManifestFile, ec) || fs::is_empty(out_abs, ec)),
                 "--overwrite replaces only a Scorch dataset (a directory with ", kManifestFile,
                 ") or an empty directory; '", o.out, "' is neither, so it is left alone");
  if (o.from == "idx") return convert_idx(o);
  if (o.from == "cifar") return convert_cifar(o);
  if (o.from == "folder") return convert_folder(o);
  if (o.from == "npy") return convert_npy(o);
  fail("--from '" + o.from + "' is not a known source format; use idx, cifar, folder or npy");
}

namespace {

ShardWriterOptions writer_options(const ConvertOptions& o, const DatasetSpec& spec) {
  ShardWriterOptions w;
  w.kind = spec.kind;
  w.sample_shape = spec.sample_shape;
  w.has_labels = spec.num_classes > 0;
  w.num_classes = spec.num_classes;
  w.class_names = spec.class_names;
  w.split = o.split;
  w.source = spec.source;
  w.shard_size = o.shard_size;
  w.gzip_level = o.gzip_level;
  w.overwrite = o.overwrite;
  return w;
}

}  // namespace

DatasetSink::DatasetSink(const ConvertOptions& options, const DatasetSpec& spec)
    : writer_(options.out, writer_options(options, spec)) {
  if (options.progress)
    bar_ = std::make_unique<ProgressBar>("converting " + options.from, spec.total);
}

void DatasetSink::add(const uint8_t* image, int64_t label) {
  writer_.add(image, label);
  if (bar_) bar_->add();
}

void DatasetSink::add(const float* vector, int64_t label) {
  writer_.add(vector, label);
  if (bar_) bar_->add();
}

Manifest DatasetSink::finish() {
  if (bar_) bar_->finish();
  return writer_.finish();
}

int64_t samples_to_convert(const ConvertOptions& options, int64_t available) {
  return options.limit > 0 ? std::min(options.limit, available) : available;
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  auto p = fs::absolute(path, ec).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "dir/" -> "dir"
  return p.string();
}

std::vector<std::string> read_name_lines(const std::string& path) {
  std::ifstream in(path);
  SCORCH_CHECK(in.good(), "cannot read '", path, "'");
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    const auto b = line.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) continue;
    const auto e = line.find_last_not_of(" \t\r\n");
    names.push_back(line.substr(b, e - b + 1));
  }
  return names;
}

int64_t num_classes_of(const std::vector<int64_t>& labels) {
  if (labels.empty()) return 0;
  return *std::max_element(labels.begin(), labels.end()) + 1;
}

}  // namespace scorch::data_tools
