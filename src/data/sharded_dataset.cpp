// Opening, checking and reading a sharded dataset (see sharded_dataset.h).
#include "data/sharded_dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "data/checksum.h"
#include "data/hdf5_util.h"

namespace scorch {
namespace fs = std::filesystem;

struct ShardedDataset::Shard {
  std::string path;
  int fd = -1;
  int64_t num_samples = 0;
  int64_t first_index = 0;
  bool gzip = false;
  // Images: sample i lives at offsets[i] with sizes[i] bytes (compressed when
  // filtered[i]). Contiguous data: offsets[0] + i * sample_bytes.
  bool contiguous = false;
  std::vector<uint64_t> offsets;
  std::vector<uint32_t> sizes;
  std::vector<uint8_t> filtered;
  std::vector<float> vectors;  // vector data, held in memory
  std::vector<int64_t> labels;
  ~Shard() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {

std::string describe_type(hid_t type) {
  const size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return std::string(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") +
             std::to_string(8 * size);
    case H5T_FLOAT:
      return "float" + std::to_string(8 * size);
    case H5T_STRING:
      return "string";
    default:
      return "a non-numeric type";
  }
}

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Full read of `count` bytes at `offset`, retrying short reads.
bool pread_all(int fd, void* dst, size_t count, uint64_t offset) {
  auto* p = static_cast<char*>(dst);
  while (count > 0) {
    const ssize_t n = ::pread(fd, p, count, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n, count -= static_cast<size_t>(n), offset += static_cast<uint64_t>(n);
  }
  return true;
}

// ---------------------------------------------------------------------------
// Opening: the manifest, then each shard in a fixed sequence of checks. A
// check that fails returns its problem (the caller prefixes the shard's path)
// and the shard's remaining checks are skipped; the other shards go on.

using Shard = ShardedDataset::Shard;
using Problem = std::optional<std::string>;  // what is wrong, or nothing

// Reads and checks `dir`/manifest.json into *manifest (as far as it could be
// read). Returns every problem; empty if none.
std::vector<std::string> load_manifest(const std::string& dir, Manifest* manifest) {
  std::error_code ec;
  if (!fs::exists(dir, ec))
    return {"dataset directory '" + dir +
            "' does not exist; create one with `scorch data convert`"};
  if (!fs::is_directory(dir, ec))
    return {"dataset path '" + dir +
            "' is not a directory (a dataset is a directory with manifest.json and shards)"};
  const auto manifest_path = (fs::path(dir) / kManifestFile).string();
  if (!fs::exists(manifest_path, ec))
    return {"dataset directory '" + dir + "' has no " + kManifestFile +
            "; it is not a Scorch dataset (create one with `scorch data convert`)"};
  nlohmann::json j;
  std::ifstream in(manifest_path);
  if (!in.good()) return {"cannot read '" + manifest_path + "': " + std::strerror(errno)};
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    return {"'" + manifest_path + "' is not valid JSON: " + e.what()};
  }
  std::vector<std::string> problems;
  *manifest = manifest_from_json(j, manifest_path, &problems);
  return problems;
}

// The shard file against its manifest entry: present, openable (s->fd), of
// the listed size and, when `checksums`, of the listed SHA-256.
Problem open_shard_file(const ShardEntry& entry, bool checksums, Shard* s, int64_t* file_size) {
  struct stat st {};
  if (::stat(s->path.c_str(), &st) != 0)
    return errno == ENOENT ? "missing (the manifest lists it with " +
                                 std::to_string(entry.num_samples) + " samples)"
                           : std::string("cannot stat: ") + std::strerror(errno);
  s->fd = ::open(s->path.c_str(), O_RDONLY | O_CLOEXEC);
  if (s->fd < 0) return std::string("cannot open for reading: ") + std::strerror(errno);
  *file_size = static_cast<int64_t>(st.st_size);
  if (*file_size < entry.bytes)
    return "truncated: " + std::to_string(*file_size) + " bytes, the manifest says " +
           std::to_string(entry.bytes);
  if (*file_size != entry.bytes)
    return "size is " + std::to_string(*file_size) + " bytes, the manifest says " +
           std::to_string(entry.bytes) + " (the file was changed after it was written)";
  if (checksums) {
    const auto sha = sha256_file(s->path);
    if (sha != entry.sha256)
      return "checksum mismatch: SHA-256 " + sha + ", the manifest says " + entry.sha256 +
             " (the file is damaged or was replaced)";
  }
  return std::nullopt;
}

// The shard's 'format' and 'format_version' attributes.
Problem check_shard_format(hid_t file) {
  const auto format = h5::string_attribute(file, "format");
  if (format != kShardFormatName)
    return "not a Scorch shard: its 'format' attribute is '" + format + "', expected '" +
           kShardFormatName + "'";
  const auto version = h5::int_attribute(file, "format_version", -1);
  if (version < 1 || version > kShardFormatVersion)
    return "format_version " + std::to_string(version) + " is not supported (this build reads " +
           std::to_string(kShardFormatVersion) + ")";
  return std::nullopt;
}

// Opens the samples dataset ('images' or 'vectors', as the manifest says)
// into *dset and checks its dtype, rank, sample shape and sample count.
Problem open_samples(hid_t file, const Manifest& m, const ShardEntry& entry, h5::Handle* dset) {
  const bool images = m.kind == SampleKind::kImages;
  const char* name = sample_kind_name(m.kind);
  const char* other = sample_kind_name(images ? SampleKind::kVectors : SampleKind::kImages);
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
    return std::string("has no '") + name + "' dataset" +
           (H5Lexists(file, other, H5P_DEFAULT) > 0
                ? std::string(" (it holds '") + other + "' but the manifest says " + name + ")"
                : "");
  *dset = h5::Handle(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  h5::Handle type(H5Dget_type(dset->get()), H5Tclose);
  const bool type_ok =
      images ? H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1 &&
                   H5Tget_sign(type.get()) == H5T_SGN_NONE
             : H5Tget_class(type.get()) == H5T_FLOAT && H5Tget_size(type.get()) == 4;
  if (!type_ok)
    return std::string("'") + name + "' has dtype " + describe_type(type.get()) + ", expected " +
           m.dtype();
  h5::Handle space(H5Dget_space(dset->get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(std::max(rank, 0));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  std::vector<hsize_t> expected{static_cast<hsize_t>(entry.num_samples)};
  for (auto d : m.sample_shape) expected.push_back(static_cast<hsize_t>(d));
  if (rank != static_cast<int>(expected.size()))
    return std::string("'") + name + "' has rank " + std::to_string(rank) + " " +
           shape_text(dims) + ", expected rank " + std::to_string(expected.size()) + " " +
           shape_text(expected) + (images ? " (N, H, W, C)" : " (N, D)");
  if (!std::equal(dims.begin() + 1, dims.end(), expected.begin() + 1))
    return std::string("'") + name + "' has shape " + shape_text(dims) + ", but the manifest" +
           " says samples of " + m.describe() + ": expected " + shape_text(expected);
  if (dims[0] != expected[0])
    return std::string("'") + name + "' holds " + std::to_string(dims[0]) +
           " samples, the manifest says " + std::to_string(entry.num_samples);
  return std::nullopt;
}

// Contiguous images: sample i lies at the dataset's offset + i * sample_bytes.
Problem locate_contiguous_images(hid_t dset, const Manifest& m, const ShardEntry& entry,
                                 int64_t file_size, Shard* s) {
  s->contiguous = true;
  const haddr_t base = H5Dget_offset(dset);
  if (base == HADDR_UNDEF) return "'images' was never written (no storage allocated)";
  s->offsets = {static_cast<uint64_t>(base)};
  if (static_cast<int64_t>(base) + entry.num_samples * m.sample_bytes() > file_size)
    return "truncated: the images end beyond the end of the file";
  return std::nullopt;
}

// One image per chunk, stored raw or through gzip (deflate) alone; sets s->gzip.
Problem check_image_chunks(hid_t dcpl, const Manifest& m, Shard* s) {
  std::vector<hsize_t> one{1};
  for (auto d : m.sample_shape) one.push_back(static_cast<hsize_t>(d));
  std::vector<hsize_t> chunk(one.size());
  H5Pget_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
  if (chunk != one)
    return "'images' is chunked " + shape_text(chunk) +
           "; the format stores one image per chunk: " + shape_text(one);
  const int nfilters = H5Pget_nfilters(dcpl);
  for (int f = 0; f < nfilters; ++f) {
    unsigned flags = 0, cd[8];
    size_t ncd = 8;
    const H5Z_filter_t id = H5Pget_filter2(dcpl, f, &flags, &ncd, cd, 0, nullptr, nullptr);
    if (id != H5Z_FILTER_DEFLATE || nfilters != 1)
      return "'images' uses HDF5 filter " + std::to_string(id) +
             "; the format allows no compression or gzip (deflate) only";
    s->gzip = true;
  }
  return std::nullopt;
}

// 'chunk_index': uint64 [num_samples, 3], (offset, size, filter mask) per
// image, as Scorch's writer stores it. Empty if malformed or unreadable.
// REQUIRES: the shard has a 'chunk_index'.
std::vector<uint64_t> read_chunk_index(hid_t file, int64_t num_samples) {
  std::vector<uint64_t> index;
  h5::Handle idx(H5Dopen2(file, "chunk_index", H5P_DEFAULT), H5Dclose);
  h5::Handle space(H5Dget_space(idx.get()), H5Sclose);
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(space.get()) != 2) return index;
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  if (dims[0] != static_cast<hsize_t>(num_samples) || dims[1] != 3) return index;
  index.resize(num_samples * 3);
  if (H5Dread(idx.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, index.data()) < 0)
    index.clear();
  return index;
}

// HDF5's own answer for image i of `dset`: its chunk's file offset, stored
// size and filter mask; false if the chunk was never written.
bool lookup_image_chunk(hid_t dset, int64_t i, uint64_t* addr_out, uint64_t* size_out,
                        unsigned* mask_out) {
  hsize_t coord[4] = {static_cast<hsize_t>(i), 0, 0, 0};  // [N, H, W, C]
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0;
  if (H5Dget_chunk_info_by_coord(dset, coord, mask_out, &addr, &size) < 0 || addr == HADDR_UNDEF)
    return false;
  *addr_out = addr, *size_out = size;
  return true;
}

// Each image's (offset, size, compressed?) from `index` if given, else from
// HDF5's chunk table, checked to lie inside the file.
Problem record_image_chunks(hid_t dset, const std::vector<uint64_t>& index, const Manifest& m,
                            int64_t num_samples, int64_t file_size, Shard* s) {
  const int64_t sample_bytes = m.sample_bytes();
  s->offsets.resize(num_samples);
  s->sizes.resize(num_samples);
  s->filtered.resize(num_samples);
  for (int64_t i = 0; i < num_samples; ++i) {
    uint64_t addr = 0, size = 0;
    unsigned mask = 0;
    if (!index.empty()) {
      addr = index[3 * i], size = index[3 * i + 1], mask = static_cast<unsigned>(index[3 * i + 2]);
    } else if (!lookup_image_chunk(dset, i, &addr, &size, &mask)) {
      return "image " + std::to_string(i) + " was never written (" + h5::last_error() + ")";
    }
    if (static_cast<int64_t>(addr + size) > file_size)
      return "truncated: image " + std::to_string(i) + " lies beyond the end of the file";
    s->offsets[i] = addr;
    s->sizes[i] = static_cast<uint32_t>(size);
    s->filtered[i] = s->gzip && (mask & 1u) == 0;
    if (!s->filtered[i] && static_cast<int64_t>(size) != sample_bytes)
      return "image " + std::to_string(i) + " is stored in " + std::to_string(size) +
             " bytes, expected " + std::to_string(sample_bytes);
  }
  return std::nullopt;
}

// Chunked images: where each image's chunk lies. A stored 'chunk_index' saves
// one HDF5 lookup per image; 16 evenly spaced images are checked against
// HDF5's chunk table so a stale index cannot pass.
Problem locate_chunked_images(hid_t file, hid_t dset, hid_t dcpl, const Manifest& m,
                              const ShardEntry& entry, int64_t file_size, Shard* s) {
  if (auto problem = check_image_chunks(dcpl, m, s)) return problem;
  const int64_t n = entry.num_samples;
  std::vector<uint64_t> index;  // empty: each image is looked up in HDF5's chunk table
  if (H5Lexists(file, "chunk_index", H5P_DEFAULT) > 0) {
    index = read_chunk_index(file, n);
    if (index.empty())
      return "'chunk_index' is not uint64 [" + std::to_string(n) + ", 3] or cannot be read";
  }
  if (auto problem = record_image_chunks(dset, index, m, n, file_size, s)) return problem;
  for (int k = 0; k < 16 && !index.empty(); ++k) {
    const int64_t i = k * (n - 1) / 15;
    uint64_t addr = 0, size = 0;
    unsigned mask = 0;
    if (!lookup_image_chunk(dset, i, &addr, &size, &mask) || addr != s->offsets[i] ||
        size != s->sizes[i])
      return "'chunk_index' disagrees with the HDF5 chunk table at image " + std::to_string(i) +
             "; rewrite the dataset with `scorch data convert`";
  }
  return std::nullopt;
}

// Where each image lies in the file, by the dataset's storage layout.
Problem locate_images(hid_t file, hid_t dset, const Manifest& m, const ShardEntry& entry,
                      int64_t file_size, Shard* s) {
  h5::Handle dcpl(H5Dget_create_plist(dset), H5Pclose);
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout == H5D_CONTIGUOUS) return locate_contiguous_images(dset, m, entry, file_size, s);
  if (layout == H5D_CHUNKED)
    return locate_chunked_images(file, dset, dcpl.get(), m, entry, file_size, s);
  return "'images' has an unsupported storage layout (compact or virtual)";
}

// Vectors are small: the whole 'vectors' dataset is read into s->vectors.
Problem read_vectors(hid_t dset, const Manifest& m, const ShardEntry& entry, Shard* s) {
  s->vectors.resize(static_cast<size_t>(entry.num_samples * m.sample_shape[0]));
  if (H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->vectors.data()) < 0)
    return "cannot read 'vectors' (" + h5::last_error() + ")";
  return std::nullopt;
}

// 'labels': int64 [num_samples], each in [0, num_classes), read into s->labels.
Problem read_labels(hid_t file, const ShardEntry& entry, int64_t num_classes, Shard* s) {
  if (H5Lexists(file, "labels", H5P_DEFAULT) <= 0)
    return "has no 'labels' dataset, but the manifest says the data has labels";
  h5::Handle dset(H5Dopen2(file, "labels", H5P_DEFAULT), H5Dclose);
  h5::Handle type(H5Dget_type(dset.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != 8 ||
      H5Tget_sign(type.get()) == H5T_SGN_NONE)
    return "'labels' has dtype " + describe_type(type.get()) + ", expected int64";
  h5::Handle space(H5Dget_space(dset.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(std::max(rank, 0));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  if (rank != 1 || dims[0] != static_cast<hsize_t>(entry.num_samples))
    return "'labels' has shape " + shape_text(dims) + ", expected [" +
           std::to_string(entry.num_samples) + "]";
  s->labels.resize(entry.num_samples);
  if (H5Dread(dset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->labels.data()) < 0)
    return "cannot read 'labels' (" + h5::last_error() + ")";
  int64_t bad = 0, first_bad = -1;
  for (int64_t i = 0; i < entry.num_samples; ++i)
    if (s->labels[i] < 0 || s->labels[i] >= num_classes)
      if (bad++ == 0) first_bad = i;
  if (bad > 0)
    return std::to_string(bad) + " label(s) outside [0, " + std::to_string(num_classes) +
           "), the first at sample " + std::to_string(first_bad) + " (label " +
           std::to_string(s->labels[first_bad]) + ")";
  return std::nullopt;
}

// Opens shard `entry` of the dataset at `dir` into *s and checks it against
// the manifest: file, HDF5 format, samples, where they lie, labels.
Problem open_shard(const std::string& dir, const Manifest& m, const ShardEntry& entry,
                   bool checksums, Shard* s) {
  s->path = (fs::path(dir) / entry.file).string();
  s->num_samples = entry.num_samples;
  s->first_index = entry.first_index;
  int64_t file_size = 0;
  if (auto problem = open_shard_file(entry, checksums, s, &file_size)) return problem;
  h5::Handle file = h5::open_read(s->path);
  if (!file.valid()) return "not a readable HDF5 file (" + h5::last_error() + ")";
  if (auto problem = check_shard_format(file.get())) return problem;
  h5::Handle dset;
  if (auto problem = open_samples(file.get(), m, entry, &dset)) return problem;
  const Problem placed = m.kind == SampleKind::kImages
                             ? locate_images(file.get(), dset.get(), m, entry, file_size, s)
                             : read_vectors(dset.get(), m, entry, s);
  if (placed) return placed;
  if (m.has_labels) return read_labels(file.get(), entry, m.num_classes, s);
  return std::nullopt;
}

}  // namespace

std::vector<std::string> ShardedDataset::open(const std::string& dir,
                                              const DatasetCheckOptions& options) {
  dir_ = dir;
  std::vector<std::string> problems = load_manifest(dir, &manifest_);
  if (!problems.empty()) return problems;
  std::unique_ptr<ProgressBar> bar;
  if (options.progress)
    bar = std::make_unique<ProgressBar>(
        options.checksums ? "checking shards (SHA-256)" : "checking shards",
        static_cast<int64_t>(manifest_.shards.size()));
  for (const auto& entry : manifest_.shards) {
    // Counts the shard when its checks end, also when one throws.
    struct Tick {
      ProgressBar* bar;
      ~Tick() {
        if (bar) bar->add(1);
      }
    } tick{bar.get()};
    auto shard = std::make_unique<Shard>();
    if (const Problem problem = open_shard(dir, manifest_, entry, options.checksums, shard.get())) {
      problems.push_back(shard->path + ": " + *problem);
      continue;
    }
    shard_of_.push_back(shard->first_index);
    shards_.push_back(std::move(shard));
  }
  return problems;
}

std::vector<std::string> check_dataset(const std::string& dir, const DatasetCheckOptions& options,
                                       Manifest* manifest) {
  ShardedDataset d;
  auto problems = d.open(dir, options);
  if (manifest) *manifest = d.manifest_;
  return problems;
}

ShardedDataset::ShardedDataset(const std::string& dir, const DatasetCheckOptions& options) {
  const auto problems = open(dir, options);
  if (problems.empty()) return;
  std::string all = "dataset '" + dir + "' cannot be used (" + std::to_string(problems.size()) +
                    " problem" + (problems.size() > 1 ? "s" : "") + "; `scorch data verify " + dir +
                    "` lists them too):";
  for (const auto& p : problems) all += "\n  " + p;
  fail(all);
}

ShardedDataset::~ShardedDataset() = default;

const Manifest& ShardedDataset::manifest() const { return manifest_; }
const std::string& ShardedDataset::dir() const { return dir_; }
int64_t ShardedDataset::size() const { return manifest_.num_samples; }
int64_t ShardedDataset::sample_bytes() const { return manifest_.sample_bytes(); }

namespace {
const ShardedDataset::Shard& find_shard(const std::vector<std::unique_ptr<ShardedDataset::Shard>>& shards,
                                        const std::vector<int64_t>& starts, int64_t index) {
  const auto it = std::upper_bound(starts.begin(), starts.end(), index);
  return *shards[static_cast<size_t>(it - starts.begin() - 1)];
}
}  // namespace

void ShardedDataset::read(int64_t index, void* dst) const {
  TORCH_CHECK(index >= 0 && index < size(), "sample index ", index, " out of range [0, ", size(),
              ")");
  const Shard& s = find_shard(shards_, shard_of_, index);
  const int64_t i = index - s.first_index;
  const int64_t n = sample_bytes();
  if (!s.vectors.empty()) {
    std::memcpy(dst, s.vectors.data() + i * manifest_.sample_shape[0], static_cast<size_t>(n));
    return;
  }
  if (s.contiguous) {
    SCORCH_CHECK(pread_all(s.fd, dst, static_cast<size_t>(n), s.offsets[0] + i * n),
                 "reading sample ", i, " of '", s.path, "' failed: ",
                 errno ? std::strerror(errno) : "unexpected end of file");
    return;
  }
  if (!s.filtered[i]) {
    SCORCH_CHECK(pread_all(s.fd, dst, static_cast<size_t>(n), s.offsets[i]), "reading sample ", i,
                 " of '", s.path, "' failed: ", errno ? std::strerror(errno) : "unexpected end of file");
    return;
  }
  thread_local std::vector<uint8_t> packed;
  packed.resize(s.sizes[i]);
  SCORCH_CHECK(pread_all(s.fd, packed.data(), packed.size(), s.offsets[i]), "reading sample ", i,
               " of '", s.path, "' failed: ", errno ? std::strerror(errno) : "unexpected end of file");
  uLongf out = static_cast<uLongf>(n);
  const int z = ::uncompress(static_cast<Bytef*>(dst), &out, packed.data(), packed.size());
  SCORCH_CHECK(z == Z_OK && out == static_cast<uLongf>(n), "sample ", i, " of '", s.path,
               "' does not decompress (zlib error ", z, "): the file is damaged");
}

torch::Tensor ShardedDataset::read_range(int64_t first, int64_t count) const {
  TORCH_CHECK(first >= 0 && count >= 0 && first + count <= size(), "read_range [", first, ", ",
              first + count, ") outside [0, ", size(), ")");
  std::vector<int64_t> shape{count};
  shape.insert(shape.end(), manifest_.sample_shape.begin(), manifest_.sample_shape.end());
  auto out = torch::empty(
      shape, manifest_.kind == SampleKind::kImages ? torch::kUInt8 : torch::kFloat);
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  for (int64_t i = 0; i < count; ++i) read(first + i, dst + i * sample_bytes());
  return out;
}

int64_t ShardedDataset::label(int64_t index) const {
  if (!manifest_.has_labels) return -1;
  const Shard& s = find_shard(shards_, shard_of_, index);
  return s.labels[index - s.first_index];
}

}  // namespace scorch
