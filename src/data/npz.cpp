// NumPy .npy arrays and .npz archives (see npz.h): header parsing, byte
// sources over files and zip members (libzip), and whole-archive reading and
// writing. Format: numpy.lib.format (NEP 1).
#include "data/npz.h"

#include <zip.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace scorch {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Sources.

NpyFile::NpyFile(const std::string& path) : NpySource(path), in_(path, std::ios::binary) {
  SCORCH_CHECK(in_.good(), "cannot open '", path, "'");
  size_ = static_cast<int64_t>(fs::file_size(path));
}

int64_t NpyFile::read(void* buf, int64_t n) {
  in_.read(static_cast<char*>(buf), n);
  return in_.gcount();
}

int64_t NpyFile::size() const { return size_; }

NpzArchive::NpzArchive(std::string path) : path_(std::move(path)) {
  int code = 0;
  zip_ = zip_open(path_.c_str(), ZIP_RDONLY, &code);
  if (zip_ == nullptr) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    const std::string message = zip_error_strerror(&error);
    zip_error_fini(&error);
    fail("cannot open '" + path_ + "' as a .npz (zip) archive: " + message);
  }
}

NpzArchive::~NpzArchive() { zip_discard(zip_); }

std::vector<std::string> NpzArchive::keys() const {
  std::vector<std::string> keys;
  const zip_int64_t n = zip_get_num_entries(zip_, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    std::string name = zip_get_name(zip_, static_cast<zip_uint64_t>(i), 0);
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0)
      keys.push_back(name.substr(0, name.size() - 4));
  }
  return keys;
}

bool NpzArchive::has(const std::string& key) const {
  return zip_name_locate(zip_, (key + ".npy").c_str(), 0) >= 0;
}

NpzMember::NpzMember(const NpzArchive& archive, const std::string& key)
    : NpySource(archive.path() + ":" + key + ".npy") {
  const std::string member = key + ".npy";
  zip_stat_t st;
  zip_stat_init(&st);
  SCORCH_CHECK(zip_stat(archive.zip_, member.c_str(), 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE),
               "cannot read '", name(), "': ", zip_strerror(archive.zip_));
  size_ = static_cast<int64_t>(st.size);
  file_ = zip_fopen(archive.zip_, member.c_str(), 0);
  SCORCH_CHECK(file_ != nullptr, "cannot open '", name(), "': ", zip_strerror(archive.zip_));
}

NpzMember::~NpzMember() { zip_fclose(file_); }

int64_t NpzMember::read(void* buf, int64_t n) {
  const zip_int64_t r = zip_fread(file_, buf, static_cast<zip_uint64_t>(n));
  SCORCH_CHECK(r >= 0, "cannot read '", name(), "': ", zip_file_strerror(file_));
  return r;
}

int64_t NpzMember::size() const { return size_; }

// ---------------------------------------------------------------------------
// Headers.

int64_t NpyHeader::elements() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

int64_t NpyHeader::row_bytes() const {
  return shape.empty() ? 0 : elements() / shape[0] * itemsize;
}

std::string NpyHeader::describe() const {
  static const std::pair<const char*, const char*> kNames[] = {
      {"u1", "uint8"},   {"u2", "uint16"},  {"u4", "uint32"},  {"u8", "uint64"},
      {"i1", "int8"},    {"i2", "int16"},   {"i4", "int32"},   {"i8", "int64"},
      {"f2", "float16"}, {"f4", "float32"}, {"f8", "float64"}, {"b1", "bool"}};
  std::string dtype = "dtype '" + descr + "'";
  const std::string code = kind + std::to_string(itemsize);
  for (const auto& [c, n] : kNames)
    if (code == c) dtype = n;
  std::ostringstream dims;  // "[60000, 28, 28]"
  dims << "[";
  for (size_t i = 0; i < shape.size(); ++i) dims << (i ? ", " : "") << shape[i];
  dims << "]";
  return dtype + " " + dims.str();
}

void read_exact(NpySource& src, void* buf, int64_t n, const char* what) {
  SCORCH_CHECK(src.read(buf, n) == n, "'", src.name(), "' is truncated: it ends inside the ", what);
}

namespace {

// The text after `'key':` in a header dict, with leading spaces skipped.
std::string value_of(const std::string& header, const std::string& key, const std::string& name) {
  for (const char q : {'\'', '"'}) {
    const auto at = header.find(q + key + q);
    if (at == std::string::npos) continue;
    const auto colon = header.find(':', at + key.size() + 2);
    const auto value =
        colon == std::string::npos ? colon : header.find_first_not_of(' ', colon + 1);
    if (value == std::string::npos) break;
    return header.substr(value);
  }
  fail("'" + name + "' has a malformed .npy header (no '" + key + "'): " + header);
}

// 'descr': '<u1' -- byte order, kind, item size. A list is a structured dtype.
void parse_descr(const std::string& header, NpyHeader* a) {
  const std::string descr = value_of(header, "descr", a->name);
  SCORCH_CHECK(descr[0] == '\'' || descr[0] == '"', "'", a->name,
               "' holds a structured array (descr ", descr.substr(0, descr.find('}')),
               "); save a plain numeric array");
  a->descr = descr.substr(1, descr.find(descr[0], 1) - 1);
  SCORCH_CHECK(a->descr.size() >= 3 && std::string("<>|=").find(a->descr[0]) != std::string::npos,
               "'", a->name, "' has an unsupported dtype '", a->descr, "'");
  a->kind = a->descr[1];
  a->itemsize = std::atoi(a->descr.c_str() + 2);
  SCORCH_CHECK(a->descr[0] != '>' || a->itemsize == 1, "'", a->name, "' is big-endian (dtype '",
               a->descr, "'); save it little-endian, e.g. a.astype(a.dtype.newbyteorder('<'))");
  SCORCH_CHECK(std::string("uif").find(a->kind) != std::string::npos && a->itemsize >= 1, "'",
               a->name, "' has dtype '", a->descr,
               "'; supported are unsigned and signed integers and floats");
}

// 'shape': (60000, 28, 28)
void parse_shape(const std::string& header, NpyHeader* a) {
  const std::string shape = value_of(header, "shape", a->name);
  SCORCH_CHECK(shape[0] == '(' && shape.find(')') != std::string::npos, "'", a->name,
               "' has a malformed .npy header (shape): ", header);
  std::string dims = shape.substr(1, shape.find(')') - 1);
  size_t pos = 0;
  while (pos < dims.size()) {
    size_t end = dims.find(',', pos);
    if (end == std::string::npos) end = dims.size();
    std::string d = dims.substr(pos, end - pos);
    d.erase(0, d.find_first_not_of(' '));
    if (!d.empty()) {
      char* stop = nullptr;
      a->shape.push_back(std::strtoll(d.c_str(), &stop, 10));
      SCORCH_CHECK(stop != d.c_str() && a->shape.back() >= 0, "'", a->name,
                   "' has a malformed .npy header (shape): ", header);
    }
    pos = end + 1;
  }
}

}  // namespace

NpyHeader read_npy_header(NpySource& src) {
  NpyHeader a;
  a.name = src.name();
  char lead[8];
  SCORCH_CHECK(src.read(lead, 8) == 8 && std::memcmp(lead, kNpyMagic, 6) == 0, "'", a.name,
               "' is not a .npy file (it does not start with the magic \\x93NUMPY)");
  const int major = static_cast<uint8_t>(lead[6]), minor = static_cast<uint8_t>(lead[7]);
  SCORCH_CHECK(major >= 1 && major <= 3, "'", a.name, "' is .npy format version ", major, ".",
               minor, "; versions 1, 2 and 3 are supported");
  uint8_t len[4] = {0, 0, 0, 0};
  const int len_bytes = major == 1 ? 2 : 4;
  read_exact(src, len, len_bytes, "header");
  const int64_t header_len =
      int64_t{len[0]} | (int64_t{len[1]} << 8) | (int64_t{len[2]} << 16) | (int64_t{len[3]} << 24);
  std::string header(static_cast<size_t>(header_len), '\0');
  read_exact(src, header.data(), header_len, "header");
  while (!header.empty() && (header.back() == '\n' || header.back() == ' ')) header.pop_back();

  parse_descr(header, &a);
  parse_shape(header, &a);
  // 'fortran_order': True means column-major data; for rank <= 1 it is the same.
  const bool fortran = value_of(header, "fortran_order", a.name).rfind("True", 0) == 0;
  SCORCH_CHECK(!fortran || a.shape.size() <= 1, "'", a.name,
               "' is stored in Fortran (column-major) order (fortran_order: True); save a "
               "C-ordered array, e.g. np.save(path, np.ascontiguousarray(a))");

  const int64_t header_total = 8 + len_bytes + header_len;
  const int64_t data = a.elements() * a.itemsize, present = src.size() - header_total;
  SCORCH_CHECK(present >= data, "'", a.name, "' is truncated: its header describes ", a.describe(),
               ", ", data, " bytes of data, but only ", present, " bytes follow");
  SCORCH_CHECK(present == data, "'", a.name, "' has ", present - data,
               " bytes more than its header's ", a.describe(), " needs (", data,
               " bytes); the file is damaged");
  return a;
}

// ---------------------------------------------------------------------------
// Whole archives.

namespace {

std::string npy_descr(torch::ScalarType t) {
  switch (t) {
    case torch::kByte: return "|u1";
    case torch::kBool: return "|b1";
    case torch::kInt: return "<i4";
    case torch::kLong: return "<i8";
    case torch::kFloat: return "<f4";
    case torch::kDouble: return "<f8";
    default: fail(detail::concat("write_npz: arrays of dtype ", t, " are not supported"));
  }
}

std::vector<char> npy_bytes(const torch::Tensor& array) {
  const auto t = array.detach().to(torch::kCPU).contiguous();
  std::string shape = "(";
  for (int64_t i = 0; i < t.dim(); ++i) shape += std::to_string(t.size(i)) + ", ";
  if (t.dim() > 1) shape.resize(shape.size() - 2);
  if (t.dim() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = "{'descr': '" + npy_descr(t.scalar_type()) +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + length (2) + header + '\n', padded to 64 bytes.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::vector<char> out(kNpyMagic, kNpyMagic + 6);
  out.push_back(1);
  out.push_back(0);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>((header.size() >> 8) & 0xff));
  out.insert(out.end(), header.begin(), header.end());
  const char* data = static_cast<const char*>(t.data_ptr());
  out.insert(out.end(), data, data + t.numel() * t.element_size());
  return out;
}

torch::ScalarType torch_dtype(const NpyHeader& a) {
  const std::string code = a.kind + std::to_string(a.itemsize);
  if (code == "u1") return torch::kByte;
  if (code == "b1") return torch::kBool;
  if (code == "i1") return torch::kChar;
  if (code == "i2") return torch::kShort;
  if (code == "i4") return torch::kInt;
  if (code == "i8" || code == "u2" || code == "u4" || code == "u8") return torch::kLong;
  if (code == "f2") return torch::kHalf;
  if (code == "f4") return torch::kFloat;
  if (code == "f8") return torch::kDouble;
  fail("'" + a.name + "' has unsupported " + a.describe());
}

}  // namespace

void write_npz(const std::string& path, const std::map<std::string, torch::Tensor>& arrays) {
  write_file_atomic(path, [&](const std::string& tmp) {
    std::error_code ec;
    fs::remove(tmp, ec);
    int code = 0;
    zip_t* zip = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
    SCORCH_CHECK(zip != nullptr, "cannot create '", tmp, "' (libzip error ", code, ")");
    std::vector<std::vector<char>> buffers;  // alive until zip_close
    buffers.reserve(arrays.size());
    for (const auto& [name, array] : arrays) {
      buffers.push_back(npy_bytes(array));
      auto& bytes = buffers.back();
      zip_source_t* src = zip_source_buffer(zip, bytes.data(), bytes.size(), 0);
      const zip_int64_t index =
          src ? zip_file_add(zip, (name + ".npy").c_str(), src, ZIP_FL_OVERWRITE) : -1;
      if (index < 0) {
        if (src) zip_source_free(src);
        const std::string why = zip_strerror(zip);
        zip_discard(zip);
        fail("cannot write '" + name + ".npy' into '" + tmp + "': " + why);
      }
      zip_set_file_compression(zip, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
    }
    if (zip_close(zip) != 0) {
      const std::string why = zip_strerror(zip);
      zip_discard(zip);
      fail("cannot write '" + tmp + "': " + why);
    }
  });
}

std::map<std::string, torch::Tensor> read_npz(const std::string& path) {
  SCORCH_CHECK(fs::is_regular_file(path), "'", path, "' is not a file");
  NpzArchive archive(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& key : archive.keys()) {
    NpzMember src(archive, key);
    const NpyHeader a = read_npy_header(src);
    std::vector<int64_t> shape = a.shape;
    auto raw = torch::empty({a.elements() * a.itemsize}, torch::kByte);
    read_exact(src, raw.data_ptr(), raw.numel(), "data");
    torch::Tensor t;
    const std::string code = a.kind + std::to_string(a.itemsize);
    if (code == "u2" || code == "u4" || code == "u8") {  // widen unsigned to int64
      const auto dtype = code == "u2" ? torch::kShort : code == "u4" ? torch::kInt : torch::kLong;
      t = raw.view(dtype).to(torch::kLong);
      if (code == "u2") t = t.bitwise_and(0xffff);
      if (code == "u4") t = t.bitwise_and(static_cast<int64_t>(0xffffffff));
    } else {
      t = raw.view(torch_dtype(a)).clone();
    }
    out[key] = t.reshape(shape);
  }
  return out;
}

}  // namespace scorch
