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

}  // namespace

std::vector<std::string> ShardedDataset::open(const std::string& dir,
                                              const DatasetCheckOptions& options) {
  dir_ = dir;
  std::vector<std::string> problems;
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
  {
    std::ifstream in(manifest_path);
    if (!in.good()) return {"cannot read '" + manifest_path + "': " + std::strerror(errno)};
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      return {"'" + manifest_path + "' is not valid JSON: " + e.what()};
    }
  }
  manifest_ = manifest_from_json(j, manifest_path, &problems);
  if (!problems.empty()) return problems;

  const auto& m = manifest_;
  const bool images = m.kind == SampleKind::kImages;
  const int64_t sample_bytes = m.sample_bytes();
  std::unique_ptr<ProgressBar> bar;
  if (options.progress)
    bar = std::make_unique<ProgressBar>(
        options.checksums ? "checking shards (SHA-256)" : "checking shards",
        static_cast<int64_t>(m.shards.size()));
  for (const auto& entry : m.shards) {
    // Counts the shard when its checks end, by whichever `continue`.
    struct Tick {
      ProgressBar* bar;
      ~Tick() {
        if (bar) bar->add(1);
      }
    } tick{bar.get()};
    auto shard = std::make_unique<Shard>();
    Shard& s = *shard;
    s.path = (fs::path(dir) / entry.file).string();
    s.num_samples = entry.num_samples;
    s.first_index = entry.first_index;
    auto problem = [&](const std::string& what) { problems.push_back(s.path + ": " + what); };

    // File presence, size and checksum.
    struct stat st {};
    if (::stat(s.path.c_str(), &st) != 0) {
      problem(errno == ENOENT ? "missing (the manifest lists it with " +
                                    std::to_string(entry.num_samples) + " samples)"
                              : std::string("cannot stat: ") + std::strerror(errno));
      continue;
    }
    s.fd = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (s.fd < 0) {
      problem(std::string("cannot open for reading: ") + std::strerror(errno));
      continue;
    }
    const auto file_size = static_cast<int64_t>(st.st_size);
    if (file_size < entry.bytes) {
      problem("truncated: " + std::to_string(file_size) + " bytes, the manifest says " +
              std::to_string(entry.bytes));
      continue;
    }
    if (file_size != entry.bytes) {
      problem("size is " + std::to_string(file_size) + " bytes, the manifest says " +
              std::to_string(entry.bytes) + " (the file was changed after it was written)");
      continue;
    }
    if (options.checksums) {
      const auto sha = sha256_file(s.path);
      if (sha != entry.sha256) {
        problem("checksum mismatch: SHA-256 " + sha + ", the manifest says " + entry.sha256 +
                " (the file is damaged or was replaced)");
        continue;
      }
    }

    // HDF5 structure.
    h5::Handle file = h5::open_read(s.path);
    if (!file.valid()) {
      problem("not a readable HDF5 file (" + h5::last_error() + ")");
      continue;
    }
    const auto format = h5::string_attribute(file.get(), "format");
    if (format != kShardFormatName) {
      problem("not a Scorch shard: its 'format' attribute is '" + format + "', expected '" +
              kShardFormatName + "'");
      continue;
    }
    const auto version = h5::int_attribute(file.get(), "format_version", -1);
    if (version < 1 || version > kShardFormatVersion) {
      problem("format_version " + std::to_string(version) + " is not supported (this build reads " +
              std::to_string(kShardFormatVersion) + ")");
      continue;
    }
    const char* name = sample_kind_name(m.kind);
    const char* other = sample_kind_name(images ? SampleKind::kVectors : SampleKind::kImages);
    if (H5Lexists(file.get(), name, H5P_DEFAULT) <= 0) {
      problem(std::string("has no '") + name + "' dataset" +
              (H5Lexists(file.get(), other, H5P_DEFAULT) > 0
                   ? std::string(" (it holds '") + other + "' but the manifest says " + name + ")"
                   : ""));
      continue;
    }
    h5::Handle dset(H5Dopen2(file.get(), name, H5P_DEFAULT), H5Dclose);
    h5::Handle type(H5Dget_type(dset.get()), H5Tclose);
    const bool type_ok =
        images ? H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1 &&
                     H5Tget_sign(type.get()) == H5T_SGN_NONE
               : H5Tget_class(type.get()) == H5T_FLOAT && H5Tget_size(type.get()) == 4;
    if (!type_ok) {
      problem(std::string("'") + name + "' has dtype " + describe_type(type.get()) +
              ", expected " + m.dtype());
      continue;
    }
    h5::Handle space(H5Dget_space(dset.get()), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(std::max(rank, 0));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    std::vector<hsize_t> expected{static_cast<hsize_t>(entry.num_samples)};
    for (auto d : m.sample_shape) expected.push_back(static_cast<hsize_t>(d));
    if (rank != static_cast<int>(expected.size())) {
      problem(std::string("'") + name + "' has rank " + std::to_string(rank) + " " +
              shape_text(dims) + ", expected rank " + std::to_string(expected.size()) + " " +
              shape_text(expected) + (images ? " (N, H, W, C)" : " (N, D)"));
      continue;
    }
    if (!std::equal(dims.begin() + 1, dims.end(), expected.begin() + 1)) {
      problem(std::string("'") + name + "' has shape " + shape_text(dims) + ", but the manifest" +
              " says samples of " + m.describe() + ": expected " + shape_text(expected));
      continue;
    }
    if (dims[0] != expected[0]) {
      problem(std::string("'") + name + "' holds " + std::to_string(dims[0]) +
              " samples, the manifest says " + std::to_string(entry.num_samples));
      continue;
    }

    // Where each sample lies in the file.
    bool ok = true;
    if (images) {
      h5::Handle dcpl(H5Dget_create_plist(dset.get()), H5Pclose);
      const H5D_layout_t layout = H5Pget_layout(dcpl.get());
      if (layout == H5D_CONTIGUOUS) {
        s.contiguous = true;
        const haddr_t base = H5Dget_offset(dset.get());
        if (base == HADDR_UNDEF) {
          problem("'images' was never written (no storage allocated)");
          continue;
        }
        s.offsets = {static_cast<uint64_t>(base)};
        if (static_cast<int64_t>(base) + entry.num_samples * sample_bytes > file_size) {
          problem("truncated: the images end beyond the end of the file");
          continue;
        }
      } else if (layout == H5D_CHUNKED) {
        std::vector<hsize_t> chunk(rank);
        H5Pget_chunk(dcpl.get(), rank, chunk.data());
        std::vector<hsize_t> one = expected;
        one[0] = 1;
        if (chunk != one) {
          problem("'images' is chunked " + shape_text(chunk) +
                  "; the format stores one image per chunk: " + shape_text(one));
          continue;
        }
        const int nfilters = H5Pget_nfilters(dcpl.get());
        for (int f = 0; f < nfilters; ++f) {
          unsigned flags = 0, cd[8];
          size_t ncd = 8;
          const H5Z_filter_t id =
              H5Pget_filter2(dcpl.get(), f, &flags, &ncd, cd, 0, nullptr, nullptr);
          if (id != H5Z_FILTER_DEFLATE || nfilters != 1) {
            problem("'images' uses HDF5 filter " + std::to_string(id) +
                    "; the format allows no compression or gzip (deflate) only");
            ok = false;
            break;
          }
          s.gzip = true;
        }
        if (!ok) continue;
        s.offsets.resize(entry.num_samples);
        s.sizes.resize(entry.num_samples);
        s.filtered.resize(entry.num_samples);
        std::vector<hsize_t> coord(rank, 0);
        // HDF5's own answer for image i: (offset, size, mask); false if unallocated.
        auto lookup = [&](int64_t i, uint64_t* addr_out, uint64_t* size_out, unsigned* mask_out) {
          coord[0] = static_cast<hsize_t>(i);
          haddr_t addr = HADDR_UNDEF;
          hsize_t size = 0;
          if (H5Dget_chunk_info_by_coord(dset.get(), coord.data(), mask_out, &addr, &size) < 0 ||
              addr == HADDR_UNDEF)
            return false;
          *addr_out = addr, *size_out = size;
          return true;
        };
        std::vector<uint64_t> index;  // [N, 3] written by Scorch's writer, if present
        if (H5Lexists(file.get(), "chunk_index", H5P_DEFAULT) > 0) {
          h5::Handle idx(H5Dopen2(file.get(), "chunk_index", H5P_DEFAULT), H5Dclose);
          h5::Handle ispace(H5Dget_space(idx.get()), H5Sclose);
          hsize_t idims[2] = {0, 0};
          if (H5Sget_simple_extent_ndims(ispace.get()) == 2) {
            H5Sget_simple_extent_dims(ispace.get(), idims, nullptr);
            if (idims[0] == static_cast<hsize_t>(entry.num_samples) && idims[1] == 3) {
              index.resize(entry.num_samples * 3);
              if (H5Dread(idx.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                          index.data()) < 0)
                index.clear();
            }
          }
          if (index.empty()) {
            problem("'chunk_index' is not uint64 [" + std::to_string(entry.num_samples) +
                    ", 3] or cannot be read");
            continue;
          }
        }
        for (int64_t i = 0; i < entry.num_samples && ok; ++i) {
          uint64_t addr = 0, size = 0;
          unsigned mask = 0;
          if (!index.empty()) {
            addr = index[3 * i], size = index[3 * i + 1], mask = static_cast<unsigned>(index[3 * i + 2]);
          } else if (!lookup(i, &addr, &size, &mask)) {
            problem("image " + std::to_string(i) + " was never written (" + h5::last_error() + ")");
            ok = false;
            break;
          }
          if (static_cast<int64_t>(addr + size) > file_size) {
            problem("truncated: image " + std::to_string(i) + " lies beyond the end of the file");
            ok = false;
          } else {
            s.offsets[i] = addr;
            s.sizes[i] = static_cast<uint32_t>(size);
            s.filtered[i] = s.gzip && (mask & 1u) == 0;
            if (!s.filtered[i] && static_cast<int64_t>(size) != sample_bytes) {
              problem("image " + std::to_string(i) + " is stored in " + std::to_string(size) +
                      " bytes, expected " + std::to_string(sample_bytes));
              ok = false;
            }
          }
        }
        // The stored index must agree with HDF5's chunk table: spot-check 16 images.
        for (int k = 0; k < 16 && ok && !index.empty(); ++k) {
          const int64_t i = k * (entry.num_samples - 1) / 15;
          uint64_t addr = 0, size = 0;
          unsigned mask = 0;
          if (!lookup(i, &addr, &size, &mask) || addr != s.offsets[i] || size != s.sizes[i]) {
            problem("'chunk_index' disagrees with the HDF5 chunk table at image " +
                    std::to_string(i) + "; rewrite the dataset with `scorch data convert`");
            ok = false;
          }
        }
        if (!ok) continue;
      } else {
        problem("'images' has an unsupported storage layout (compact or virtual)");
        continue;
      }
    } else {
      s.vectors.resize(static_cast<size_t>(entry.num_samples * m.sample_shape[0]));
      if (H5Dread(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, s.vectors.data()) <
          0) {
        problem("cannot read 'vectors' (" + h5::last_error() + ")");
        continue;
      }
    }

    // Labels.
    if (m.has_labels) {
      if (H5Lexists(file.get(), "labels", H5P_DEFAULT) <= 0) {
        problem("has no 'labels' dataset, but the manifest says the data has labels");
        continue;
      }
      h5::Handle ldset(H5Dopen2(file.get(), "labels", H5P_DEFAULT), H5Dclose);
      h5::Handle ltype(H5Dget_type(ldset.get()), H5Tclose);
      if (H5Tget_class(ltype.get()) != H5T_INTEGER || H5Tget_size(ltype.get()) != 8 ||
          H5Tget_sign(ltype.get()) == H5T_SGN_NONE) {
        problem("'labels' has dtype " + describe_type(ltype.get()) + ", expected int64");
        continue;
      }
      h5::Handle lspace(H5Dget_space(ldset.get()), H5Sclose);
      const int lrank = H5Sget_simple_extent_ndims(lspace.get());
      std::vector<hsize_t> ldims(std::max(lrank, 0));
      H5Sget_simple_extent_dims(lspace.get(), ldims.data(), nullptr);
      if (lrank != 1 || ldims[0] != static_cast<hsize_t>(entry.num_samples)) {
        problem("'labels' has shape " + shape_text(ldims) + ", expected [" +
                std::to_string(entry.num_samples) + "]");
        continue;
      }
      s.labels.resize(entry.num_samples);
      if (H5Dread(ldset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, s.labels.data()) <
          0) {
        problem("cannot read 'labels' (" + h5::last_error() + ")");
        continue;
      }
      int64_t bad = 0, first_bad = -1;
      for (int64_t i = 0; i < entry.num_samples; ++i)
        if (s.labels[i] < 0 || s.labels[i] >= m.num_classes)
          if (bad++ == 0) first_bad = i;
      if (bad > 0) {
        problem(std::to_string(bad) + " label(s) outside [0, " + std::to_string(m.num_classes) +
                "), the first at sample " + std::to_string(first_bad) + " (label " +
                std::to_string(s.labels[first_bad]) + ")");
        continue;
      }
    }
    shard_of_.push_back(s.first_index);
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
