// Shard writer (see shard_writer.h): extendible HDF5 datasets, one image per
// chunk, flushed every kFlushRows samples; shards hashed after closing; the
// whole directory renamed into place at the end.
#include "data/shard_writer.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "data/checksum.h"
#include "data/hdf5_util.h"

namespace scorch {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kFlushRows = 256;

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// Removes temporary directories of earlier writers to `target` whose process
// has exited (e.g. killed mid-conversion).
void remove_stale_partials(const fs::path& target) {
  std::error_code ec;
  const auto parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string prefix = "." + target.filename().string() + ".partial-";
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const long pid = std::atol(name.c_str() + prefix.size());
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      fs::remove_all(e.path(), ec);
      if (!ec) log_info("removed the unfinished dataset '", e.path().string(), "' of process ", pid);
    }
  }
}

}  // namespace

struct ShardWriter::State {
  fs::path target, tmp;
  ShardWriterOptions o;
  Manifest manifest;
  int64_t sample_bytes = 0;
  int64_t total = 0;
  bool finished = false;

  // The open shard.
  h5::Handle file, samples, labels;
  int64_t shard_rows = 0;  // rows written to the open shard
  std::vector<uint8_t> buffer;
  std::vector<int64_t> label_buffer;
  int64_t buffered = 0;

  void open_shard() {
    const int64_t index = static_cast<int64_t>(manifest.shards.size());
    ShardEntry e;
    e.file = shard_file_name(index);
    e.first_index = total;
    manifest.shards.push_back(e);
    const auto path = (tmp / e.file).string();
    h5::quiet();
    file = h5::Handle(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    TORCH_CHECK(file.valid(), "cannot create '", path, "': ", h5::last_error());
    h5::write_string_attribute(file.get(), "format", kShardFormatName);
    h5::write_int_attribute(file.get(), "format_version", kShardFormatVersion);
    h5::write_int_attribute(file.get(), "shard_index", index);
    h5::write_int_attribute(file.get(), "first_index", total);

    const bool images = o.kind == SampleKind::kImages;
    std::vector<hsize_t> dims{0}, maxdims{H5S_UNLIMITED}, chunk{1};
    for (auto d : o.sample_shape)
      dims.push_back(d), maxdims.push_back(d), chunk.push_back(d);
    if (!images)  // a vector is a few bytes: chunk ~64 KiB of rows instead
      chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(o.shard_size, 65536 / sample_bytes));
    h5::Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data()),
                     H5Sclose);
    h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
    if (o.gzip_level > 0) H5Pset_deflate(dcpl.get(), static_cast<unsigned>(o.gzip_level));
    samples = h5::Handle(H5Dcreate2(file.get(), sample_kind_name(o.kind),
                                    images ? H5T_STD_U8LE : H5T_IEEE_F32LE, space.get(),
                                    H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                         H5Dclose);
    TORCH_CHECK(samples.valid(), "cannot create dataset in '", path, "': ", h5::last_error());
    h5::write_string_attribute(samples.get(), "layout", images ? "NHWC" : "ND");
    if (o.has_labels) {
      hsize_t ldims = 0, lmax = H5S_UNLIMITED, lchunk = std::min<hsize_t>(o.shard_size, 8192);
      h5::Handle lspace(H5Screate_simple(1, &ldims, &lmax), H5Sclose);
      h5::Handle lcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
      H5Pset_chunk(lcpl.get(), 1, &lchunk);
      labels = h5::Handle(H5Dcreate2(file.get(), "labels", H5T_STD_I64LE, lspace.get(),
                                     H5P_DEFAULT, lcpl.get(), H5P_DEFAULT),
                          H5Dclose);
      TORCH_CHECK(labels.valid(), "cannot create labels in '", path, "': ", h5::last_error());
      h5::write_int_attribute(labels.get(), "num_classes", o.num_classes);
    }
    shard_rows = 0;
  }

  // Appends `rows` rows from `data` to an extendible dataset of row size `row_bytes`.
  void append(hid_t dset, hid_t mem_type, const void* data, int64_t rows) {
    h5::Handle space(H5Dget_space(dset), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(rank);
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    std::vector<hsize_t> start(rank, 0), count = dims;
    start[0] = dims[0];
    count[0] = static_cast<hsize_t>(rows);
    dims[0] += static_cast<hsize_t>(rows);
    TORCH_CHECK(H5Dset_extent(dset, dims.data()) >= 0, "H5Dset_extent: ", h5::last_error());
    h5::Handle fspace(H5Dget_space(dset), H5Sclose);
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                        nullptr);
    h5::Handle mspace(H5Screate_simple(rank, count.data(), nullptr), H5Sclose);
    TORCH_CHECK(H5Dwrite(dset, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, data) >= 0,
                "writing shard ", manifest.shards.back().file, " in '", tmp.string(),
                "': ", h5::last_error());
  }

  void flush() {
    if (buffered == 0) return;
    append(samples.get(), o.kind == SampleKind::kImages ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT,
           buffer.data(), buffered);
    if (o.has_labels) append(labels.get(), H5T_NATIVE_INT64, label_buffer.data(), buffered);
    shard_rows += buffered;
    buffered = 0;
  }

  // Records where HDF5 put each image's chunk: /chunk_index uint64 [N, 3]
  // (byte offset, stored bytes, filter mask), so readers need not ask HDF5
  // once per sample at open (~50 us a lookup; a minute for a million images).
  void write_chunk_index() {
    TORCH_CHECK(H5Dflush(samples.get()) >= 0, "flushing ", manifest.shards.back().file, ": ",
                h5::last_error());
    std::vector<uint64_t> index(static_cast<size_t>(shard_rows) * 3);
    std::vector<hsize_t> coord(1 + o.sample_shape.size(), 0);
    for (int64_t i = 0; i < shard_rows; ++i) {
      coord[0] = static_cast<hsize_t>(i);
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      hsize_t size = 0;
      TORCH_CHECK(H5Dget_chunk_info_by_coord(samples.get(), coord.data(), &mask, &addr, &size) >= 0 &&
                      addr != HADDR_UNDEF,
                  "locating image ", i, " of ", manifest.shards.back().file, ": ", h5::last_error());
      index[3 * i] = addr, index[3 * i + 1] = size, index[3 * i + 2] = mask;
    }
    hsize_t dims[2] = {static_cast<hsize_t>(shard_rows), 3};
    h5::Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
    h5::Handle d(H5Dcreate2(file.get(), "chunk_index", H5T_STD_U64LE, space.get(), H5P_DEFAULT,
                            H5P_DEFAULT, H5P_DEFAULT),
                 H5Dclose);
    TORCH_CHECK(d.valid() && H5Dwrite(d.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                      index.data()) >= 0,
                "writing the chunk index of ", manifest.shards.back().file, ": ", h5::last_error());
    h5::write_string_attribute(d.get(), "columns", "byte_offset stored_bytes filter_mask");
  }

  void close_shard() {
    flush();
    if (o.kind == SampleKind::kImages && shard_rows > 0) write_chunk_index();
    samples.close();
    labels.close();
    const auto path = (tmp / manifest.shards.back().file).string();
    TORCH_CHECK(file.close(), "closing '", path, "' failed: ", h5::last_error());
    manifest.shards.back().num_samples = shard_rows;
  }

  void add(const void* sample, int64_t label) {
    if (o.has_labels)
      SCORCH_CHECK(label >= 0 && label < o.num_classes, "sample ", total, " has label ", label,
                   ", outside [0, ", o.num_classes, ")");
    if (!file.valid()) open_shard();
    std::memcpy(buffer.data() + buffered * sample_bytes, sample, sample_bytes);
    if (o.has_labels) label_buffer[buffered] = label;
    ++buffered;
    ++total;
    if (buffered == kFlushRows) flush();
    if (shard_rows + buffered == o.shard_size) close_shard();
  }
};

ShardWriter::ShardWriter(std::string out_dir, ShardWriterOptions options)
    : s_(std::make_unique<State>()) {
  auto& s = *s_;
  s.o = std::move(options);
  const auto& o = s.o;
  SCORCH_CHECK(!out_dir.empty(), "the output dataset directory is empty");
  s.target = fs::path(out_dir).lexically_normal();
  if (s.target.filename().empty()) s.target = s.target.parent_path();
  const size_t rank = o.kind == SampleKind::kImages ? 3 : 1;
  bool positive = o.sample_shape.size() == rank;
  for (auto d : o.sample_shape) positive = positive && d > 0;
  SCORCH_CHECK(positive, "a dataset of ", sample_kind_name(o.kind), " needs a sample shape ",
               rank == 3 ? "[H, W, C]" : "[D]", " with positive sizes");
  if (o.kind == SampleKind::kImages)
    SCORCH_CHECK(o.sample_shape[2] <= 4, "images have 1 to 4 channels (HWC layout), got shape [",
                 o.sample_shape[0], ", ", o.sample_shape[1], ", ", o.sample_shape[2], "]");
  SCORCH_CHECK(o.shard_size > 0, "--shard-size must be positive, got ", o.shard_size);
  SCORCH_CHECK(o.gzip_level >= 0 && o.gzip_level <= 9, "--gzip level must be 0 (none) to 9, got ",
               o.gzip_level);
  SCORCH_CHECK(!o.has_labels || o.num_classes > 0,
               "a labelled dataset needs num_classes >= 1");
  SCORCH_CHECK(o.class_names.empty() || static_cast<int64_t>(o.class_names.size()) == o.num_classes,
               o.class_names.size(), " class names for ", o.num_classes, " classes");
  std::error_code ec;
  if (fs::exists(s.target, ec)) {
    SCORCH_CHECK(o.overwrite, "'", s.target.string(),
                 "' already exists; choose another --out or pass --overwrite to replace it");
    // Replace only a dataset or an empty directory, never anything else.
    SCORCH_CHECK(fs::is_directory(s.target, ec) && (fs::exists(s.target / kManifestFile, ec) ||
                                                    fs::is_empty(s.target, ec)),
                 "'", s.target.string(), "' exists and is not a Scorch dataset (no ",
                 kManifestFile, "); refusing to replace it, even with --overwrite");
  }
  const auto parent = s.target.parent_path().empty() ? fs::path(".") : s.target.parent_path();
  fs::create_directories(parent, ec);
  SCORCH_CHECK(!ec, "cannot create '", parent.string(), "': ", ec.message());
  remove_stale_partials(s.target);
  s.tmp = parent / ("." + s.target.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(s.tmp, ec);
  fs::create_directory(s.tmp, ec);
  SCORCH_CHECK(!ec, "cannot create '", s.tmp.string(), "': ", ec.message());

  s.sample_bytes = (o.kind == SampleKind::kImages ? 1 : 4);
  for (auto d : o.sample_shape) s.sample_bytes *= d;
  s.buffer.resize(static_cast<size_t>(kFlushRows * s.sample_bytes));
  s.label_buffer.resize(kFlushRows);
  auto& m = s.manifest;
  m.kind = o.kind;
  m.sample_shape = o.sample_shape;
  m.has_labels = o.has_labels;
  m.num_classes = o.has_labels ? o.num_classes : 0;
  m.class_names = o.class_names;
  m.split = o.split;
  m.source = o.source;
  m.compression = o.gzip_level > 0 ? "gzip" : "none";
  m.compression_level = o.gzip_level;
  m.shard_size = o.shard_size;
}

ShardWriter::~ShardWriter() {
  if (!s_ || s_->finished) return;
  s_->samples.close();
  s_->labels.close();
  s_->file.close();
  std::error_code ec;
  fs::remove_all(s_->tmp, ec);
}

void ShardWriter::add(const uint8_t* image, int64_t label) {
  TORCH_CHECK(s_->o.kind == SampleKind::kImages, "add(uint8) on a vector dataset");
  s_->add(image, label);
}

void ShardWriter::add(const float* vector, int64_t label) {
  TORCH_CHECK(s_->o.kind == SampleKind::kVectors, "add(float) on an image dataset");
  s_->add(vector, label);
}

void ShardWriter::add_batch(const torch::Tensor& samples, const torch::Tensor& labels) {
  const auto& o = s_->o;
  const bool images = o.kind == SampleKind::kImages;
  std::vector<int64_t> expected{samples.size(0)};
  expected.insert(expected.end(), o.sample_shape.begin(), o.sample_shape.end());
  SCORCH_CHECK(samples.sizes().vec() == expected &&
                   samples.scalar_type() == (images ? torch::kUInt8 : torch::kFloat),
               "samples must be ", images ? "uint8 [n, H, W, C]" : "float32 [n, D]",
               " matching the dataset's sample shape; got ", samples.scalar_type(), " ",
               samples.sizes());
  SCORCH_CHECK(labels.defined() == o.has_labels,
               o.has_labels ? "this dataset has labels: pass int64 labels [n]"
                            : "this dataset has no labels");
  auto x = samples.cpu().contiguous();
  torch::Tensor y;
  if (labels.defined()) {
    y = labels.cpu().to(torch::kLong).contiguous();
    SCORCH_CHECK(y.dim() == 1 && y.size(0) == x.size(0), "labels must be [n] for n = ", x.size(0));
  }
  const auto* base = static_cast<const uint8_t*>(x.data_ptr());
  for (int64_t i = 0; i < x.size(0); ++i)
    s_->add(base + i * s_->sample_bytes, y.defined() ? y[i].item<int64_t>() : -1);
}

int64_t ShardWriter::count() const { return s_->total; }

Manifest ShardWriter::finish() {
  auto& s = *s_;
  TORCH_CHECK(!s.finished, "finish() called twice");
  SCORCH_CHECK(s.total > 0, "no samples to write: the dataset '", s.target.string(),
               "' would be empty (nothing was written)");
  if (s.file.valid()) s.close_shard();
  auto& m = s.manifest;
  m.num_samples = s.total;
  m.created = utc_now();
  for (auto& e : m.shards) {
    const auto path = s.tmp / e.file;
    fsync_file(path.string());
    e.bytes = static_cast<int64_t>(fs::file_size(path));
    e.sha256 = sha256_file(path.string());
  }
  write_file_atomic((s.tmp / kManifestFile).string(), to_json(m).dump(2) + "\n");
  std::error_code ec;
  fs::path old;
  if (fs::exists(s.target, ec)) {  // overwrite: move the old one aside first
    old = s.target.parent_path() /
          ("." + s.target.filename().string() + ".old-" + std::to_string(::getpid()));
    fs::remove_all(old, ec);
    fs::rename(s.target, old, ec);
    SCORCH_CHECK(!ec, "cannot move the existing '", s.target.string(), "' aside: ", ec.message());
  }
  fs::rename(s.tmp, s.target, ec);
  if (ec) {
    std::error_code ignored;
    if (!old.empty()) fs::rename(old, s.target, ignored);  // put the old dataset back
    fail("cannot rename '" + s.tmp.string() + "' to '" + s.target.string() + "': " + ec.message());
  }
  fsync_directory(s.target.parent_path().empty() ? "." : s.target.parent_path().string());
  if (!old.empty()) fs::remove_all(old, ec);
  s.finished = true;
  return m;
}

}  // namespace scorch
