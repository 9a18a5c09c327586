// NumPy arrays on disk: .npy files (numpy.lib.format, NEP 1) and .npz
// archives (numpy.savez[_compressed]: a zip of <key>.npy members, through
// libzip). Two levels of access:
//
// Whole archives of named arrays, e.g. the reference statistics files that
// pytorch-fid, EDM and guided-diffusion read and write (`mu`, `sigma`, ...):
//
//   write_npz("stats.npz", {{"mu", mu}, {"sigma", sigma}});
//   auto arrays = read_npz("fid_stats_cifar10_train.npz");  // name -> tensor
//
// One array streamed from its header on, for arrays larger than memory (the
// dataset converter, data_tools/npy.cpp):
//
//   NpzArchive archive("mnist.npz");
//   NpzMember src(archive, "x");
//   const NpyHeader header = read_npy_header(src);  // dtype, shape; data follows
//   read_exact(src, rows.data(), n * header.row_bytes(), "data");
//
// A .npy file is the magic "\x93NUMPY", a version byte pair, a little-endian
// header length (uint16 in v1, uint32 in v2/v3) and an ASCII Python dict
// literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 2), },
// then the array's bytes in C order.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

struct zip;       // libzip's zip_t
struct zip_file;  // libzip's zip_file_t

namespace scorch {

inline constexpr char kNpyMagic[] = "\x93NUMPY";  // the first 6 bytes of a .npy file

// Writes `arrays` (CPU or not; any of uint8, int32, int64, float32, float64,
// bool) as members <name>.npy, uncompressed, C order, little-endian, .npy
// format 1.0, readable with numpy.load. Atomic: a temporary file in the same
// directory, then a rename. Throws scorch::Error naming the file on failure.
void write_npz(const std::string& path, const std::map<std::string, torch::Tensor>& arrays);

// Every array of an .npz file (stored or deflated, as numpy.savez and
// savez_compressed write them) as CPU tensors of the stored dtype: integers
// and floats; unsigned 16/32/64-bit become int64. Throws scorch::Error naming
// the file and the member on a damaged archive or an unsupported dtype (bool
// among them: read_npy_header accepts integers and floats only).
std::map<std::string, torch::Tensor> read_npz(const std::string& path);

// ---------------------------------------------------------------------------
// Streaming. Sources are not thread-safe; each throws scorch::Error naming
// the file (and member) when it cannot be opened or read.

// Sequential bytes of one .npy array: a file, or a member of an .npz archive.
class NpySource {
 public:
  explicit NpySource(std::string name) : name_(std::move(name)) {}
  virtual ~NpySource() = default;
  // Reads up to n bytes into buf; fewer only at the end.
  virtual int64_t read(void* buf, int64_t n) = 0;
  // Total bytes (uncompressed).
  virtual int64_t size() const = 0;
  // For messages: "a.npy" or "a.npz:x.npy".
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// A .npy file.
class NpyFile : public NpySource {
 public:
  explicit NpyFile(const std::string& path);
  int64_t read(void* buf, int64_t n) override;
  int64_t size() const override;

 private:
  std::ifstream in_;
  int64_t size_ = 0;
};

// An .npz archive opened for reading. Outlives the NpzMembers opened from it.
class NpzArchive {
 public:
  explicit NpzArchive(std::string path);
  ~NpzArchive();
  NpzArchive(const NpzArchive&) = delete;
  NpzArchive& operator=(const NpzArchive&) = delete;

  // Array names: members "<key>.npy" without the suffix, in archive order.
  std::vector<std::string> keys() const;
  bool has(const std::string& key) const;
  const std::string& path() const { return path_; }

 private:
  friend class NpzMember;
  std::string path_;
  struct zip* zip_ = nullptr;
};

// Member "<key>.npy" of an archive. REQUIRES: the archive outlives it.
class NpzMember : public NpySource {
 public:
  NpzMember(const NpzArchive& archive, const std::string& key);
  ~NpzMember() override;
  NpzMember(const NpzMember&) = delete;
  NpzMember& operator=(const NpzMember&) = delete;
  int64_t read(void* buf, int64_t n) override;
  int64_t size() const override;

 private:
  struct zip_file* file_ = nullptr;
  int64_t size_ = 0;
};

// A .npy array's header; its data follows in the source.
struct NpyHeader {
  std::string name;   // the source's name
  std::string descr;  // '<f4'
  char kind = 0;      // 'u' unsigned, 'i' signed, 'f' float
  int64_t itemsize = 0;
  std::vector<int64_t> shape;

  int64_t elements() const;
  int64_t row_bytes() const;     // bytes per entry of the first axis; 0 for a scalar
  std::string describe() const;  // "float32 [60000, 2]"
};

// Reads the header of the array in `src` and checks that the source holds
// exactly its data: format version 1-3, a little-endian (or single-byte)
// integer or float dtype, C order (or rank <= 1). Throws scorch::Error naming
// the source and saying what to save instead.
NpyHeader read_npy_header(NpySource& src);

// Reads exactly n bytes; throws scorch::Error naming the source and `what`
// ("header", "data") if it ends first.
void read_exact(NpySource& src, void* buf, int64_t n, const char* what);

}  // namespace scorch
