// NumPy arrays (numpy.lib.format, NEP 1): a .npy file is the magic
// "\x93NUMPY", a version byte pair, a little-endian header length (uint16 in
// v1, uint32 in v2/v3) and an ASCII Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 2), }, then the
// array's bytes in C order. A .npz (numpy.savez[_compressed]) is a zip archive
// of .npy members named <key>.npy, read here with libzip.
// uint8 [N, H, W] / [N, H, W, C] become images, float32/64 [N, D] vectors;
// integer labels [N] of any width become int64.
#include <zip.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data_tools/converters.h"
#include "data_tools/npz.h"

namespace scorch::data_tools {
namespace fs = std::filesystem;

namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr int64_t kChunkBytes = 1 << 20;  // bytes per read while streaming samples

// Sequential bytes of one array: a file, or a member of a zip archive.
class ByteSource {
 public:
  explicit ByteSource(std::string name) : name_(std::move(name)) {}
  virtual ~ByteSource() = default;
  // Reads up to n bytes; fewer only at the end.
  virtual int64_t read(void* buf, int64_t n) = 0;
  virtual int64_t size() const = 0;  // total bytes (uncompressed)
  const std::string& name() const { return name_; }

 private:
  std::string name_;  // for messages: "a.npy" or "a.npz:x.npy"
};

class FileSource : public ByteSource {
 public:
  explicit FileSource(const std::string& path) : ByteSource(path), in_(path, std::ios::binary) {
    SCORCH_CHECK(in_.good(), "cannot open '", path, "'");
    size_ = static_cast<int64_t>(fs::file_size(path));
  }
  int64_t read(void* buf, int64_t n) override {
    in_.read(static_cast<char*>(buf), n);
    return in_.gcount();
  }
  int64_t size() const override { return size_; }

 private:
  std::ifstream in_;
  int64_t size_ = 0;
};

class ZipArchive {
 public:
  explicit ZipArchive(std::string path) : path_(std::move(path)) {
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
  ~ZipArchive() { zip_discard(zip_); }
  ZipArchive(const ZipArchive&) = delete;
  ZipArchive& operator=(const ZipArchive&) = delete;

  // Array names: members "<key>.npy" without the suffix.
  std::vector<std::string> keys() const {
    std::vector<std::string> keys;
    const zip_int64_t n = zip_get_num_entries(zip_, 0);
    for (zip_int64_t i = 0; i < n; ++i) {
      std::string name = zip_get_name(zip_, static_cast<zip_uint64_t>(i), 0);
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0)
        keys.push_back(name.substr(0, name.size() - 4));
    }
    return keys;
  }
  bool has(const std::string& key) const {
    return zip_name_locate(zip_, (key + ".npy").c_str(), 0) >= 0;
  }
  zip_t* get() const { return zip_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  zip_t* zip_ = nullptr;
};

class ZipMemberSource : public ByteSource {
 public:
  ZipMemberSource(const ZipArchive& archive, const std::string& key)
      : ByteSource(archive.path() + ":" + key + ".npy") {
    const std::string member = key + ".npy";
    zip_stat_t st;
    zip_stat_init(&st);
    SCORCH_CHECK(zip_stat(archive.get(), member.c_str(), 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE),
                 "cannot read '", name(), "': ", zip_strerror(archive.get()));
    size_ = static_cast<int64_t>(st.size);
    file_ = zip_fopen(archive.get(), member.c_str(), 0);
    SCORCH_CHECK(file_ != nullptr, "cannot open '", name(), "': ", zip_strerror(archive.get()));
  }
  ~ZipMemberSource() override { zip_fclose(file_); }
  int64_t read(void* buf, int64_t n) override {
    const zip_int64_t r = zip_fread(file_, buf, static_cast<zip_uint64_t>(n));
    SCORCH_CHECK(r >= 0, "cannot read '", name(), "': ", zip_file_strerror(file_));
    return r;
  }
  int64_t size() const override { return size_; }

 private:
  zip_file_t* file_ = nullptr;
  int64_t size_ = 0;
};

// An array's header; its data follows in the source.
struct NpyArray {
  std::string name;
  std::string descr;  // '<f4'
  char kind = 0;      // 'u' unsigned, 'i' signed, 'f' float, ...
  int64_t itemsize = 0;
  std::vector<int64_t> shape;

  int64_t elements() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  int64_t row_bytes() const { return shape.empty() ? 0 : elements() / shape[0] * itemsize; }
  std::string describe() const {
    static const std::pair<const char*, const char*> kNames[] = {
        {"u1", "uint8"},   {"u2", "uint16"},  {"u4", "uint32"},  {"u8", "uint64"},
        {"i1", "int8"},    {"i2", "int16"},   {"i4", "int32"},   {"i8", "int64"},
        {"f2", "float16"}, {"f4", "float32"}, {"f8", "float64"}, {"b1", "bool"}};
    std::string dtype = "dtype '" + descr + "'";
    const std::string code = kind + std::to_string(itemsize);
    for (const auto& [c, n] : kNames)
      if (code == c) dtype = n;
    return dtype + " " + shape_string(shape);
  }
};

void read_exact(ByteSource& src, void* buf, int64_t n, const char* what) {
  SCORCH_CHECK(src.read(buf, n) == n, "'", src.name(), "' is truncated: it ends inside the ", what);
}

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

NpyArray read_npy_header(ByteSource& src) {
  NpyArray a;
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

  // 'descr': '<u1' -- byte order, kind, item size. A list is a structured dtype.
  const std::string descr = value_of(header, "descr", a.name);
  SCORCH_CHECK(descr[0] == '\'' || descr[0] == '"', "'", a.name,
               "' holds a structured array (descr ", descr.substr(0, descr.find('}')),
               "); save a plain numeric array");
  a.descr = descr.substr(1, descr.find(descr[0], 1) - 1);
  SCORCH_CHECK(a.descr.size() >= 3 && std::string("<>|=").find(a.descr[0]) != std::string::npos,
               "'", a.name, "' has an unsupported dtype '", a.descr, "'");
  a.kind = a.descr[1];
  a.itemsize = std::atoi(a.descr.c_str() + 2);
  SCORCH_CHECK(a.descr[0] != '>' || a.itemsize == 1, "'", a.name, "' is big-endian (dtype '",
               a.descr, "'); save it little-endian, e.g. a.astype(a.dtype.newbyteorder('<'))");
  SCORCH_CHECK(std::string("uif").find(a.kind) != std::string::npos && a.itemsize >= 1, "'", a.name,
               "' has dtype '", a.descr,
               "'; supported are unsigned and signed integers and floats");

  // 'shape': (60000, 28, 28)
  const std::string shape = value_of(header, "shape", a.name);
  SCORCH_CHECK(shape[0] == '(' && shape.find(')') != std::string::npos, "'", a.name,
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
      a.shape.push_back(std::strtoll(d.c_str(), &stop, 10));
      SCORCH_CHECK(stop != d.c_str() && a.shape.back() >= 0, "'", a.name,
                   "' has a malformed .npy header (shape): ", header);
    }
    pos = end + 1;
  }

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

template <typename T>
void append_as_int64(const std::vector<uint8_t>& bytes, std::vector<int64_t>* out) {
  for (size_t i = 0; i + sizeof(T) <= bytes.size(); i += sizeof(T)) {
    T v;
    std::memcpy(&v, bytes.data() + i, sizeof(T));
    out->push_back(static_cast<int64_t>(v));
  }
}

// Integer labels [N] (or [N, 1]) as int64, each >= 0.
std::vector<int64_t> read_labels(ByteSource& src) {
  const NpyArray a = read_npy_header(src);
  SCORCH_CHECK((a.kind == 'u' || a.kind == 'i') &&
                   (a.shape.size() == 1 || (a.shape.size() == 2 && a.shape[1] == 1)),
               "labels '", a.name, "' hold ", a.describe(), "; expected integer labels [N]");
  std::vector<uint8_t> bytes(static_cast<size_t>(a.elements() * a.itemsize));
  read_exact(src, bytes.data(), static_cast<int64_t>(bytes.size()), "data");
  std::vector<int64_t> labels;
  labels.reserve(static_cast<size_t>(a.elements()));
  const bool sign = a.kind == 'i';
  switch (a.itemsize) {
    case 1:
      sign ? append_as_int64<int8_t>(bytes, &labels) : append_as_int64<uint8_t>(bytes, &labels);
      break;
    case 2:
      sign ? append_as_int64<int16_t>(bytes, &labels) : append_as_int64<uint16_t>(bytes, &labels);
      break;
    case 4:
      sign ? append_as_int64<int32_t>(bytes, &labels) : append_as_int64<uint32_t>(bytes, &labels);
      break;
    case 8:
      sign ? append_as_int64<int64_t>(bytes, &labels) : append_as_int64<uint64_t>(bytes, &labels);
      break;
    default:
      fail("labels '" + a.name + "' have an unsupported dtype '" + a.descr + "'");
  }
  for (size_t i = 0; i < labels.size(); ++i)
    SCORCH_CHECK(labels[i] >= 0, "labels '", a.name, "' hold ", labels[i], " at index ", i,
                 "; labels must be class indices >= 0");
  return labels;
}

// The first of `candidates` that `archive` holds, other than `taken`; or "".
std::string first_key(const ZipArchive& archive, std::initializer_list<const char*> candidates,
                      const std::string& taken = "") {
  for (const char* k : candidates)
    if (archive.has(k) && k != taken) return k;
  return "";
}

std::string key_list(const ZipArchive& archive) {
  std::string s;
  for (const auto& k : archive.keys()) s += (s.empty() ? "" : ", ") + k;
  return s.empty() ? "none" : s;
}

// Streams the samples of `src` (header read into `a`) into a new dataset.
Manifest write_samples(const ConvertOptions& o, ByteSource& src, const NpyArray& a,
                       const std::vector<int64_t>& labels, const std::string& source) {
  const auto& s = a.shape;
  const bool images = a.kind == 'u' && a.itemsize == 1 &&
                      (s.size() == 3 || (s.size() == 4 && s[3] >= 1 && s[3] <= 4));
  const bool vectors = a.kind == 'f' && (a.itemsize == 4 || a.itemsize == 8) && s.size() == 2;
  if (!images && !vectors) {
    std::string hint;
    if (a.kind == 'u' && a.itemsize == 1 && s.size() == 4 && s[1] <= 4)
      hint = "; for NCHW images save a.transpose(0, 2, 3, 1)";
    else if (a.kind == 'f' && s.size() >= 3)
      hint =
          "; for float images save (a * 255).round().astype(np.uint8), or flatten them to "
          "[N, D] vectors";
    else if (a.kind != 'f' && s.size() == 2)
      hint = "; for vectors save a.astype(np.float32)";
    fail("'" + a.name + "' holds " + a.describe() +
         "; expected uint8 images [N, H, W] or [N, H, W, C] with C <= 4, or float32/float64 "
         "vectors [N, D]" +
         hint);
  }
  SCORCH_CHECK(s[0] > 0, "'", a.name, "' holds no samples (", a.describe(), ")");
  if (!labels.empty())
    SCORCH_CHECK(static_cast<int64_t>(labels.size()) == s[0], "the labels hold ", labels.size(),
                 " entries but '", a.name, "' holds ", s[0], " samples");

  DatasetSpec spec;
  spec.kind = images ? SampleKind::kImages : SampleKind::kVectors;
  spec.sample_shape = images ? std::vector<int64_t>{s[1], s[2], s.size() == 4 ? s[3] : 1}
                             : std::vector<int64_t>{s[1]};
  spec.num_classes = num_classes_of(labels);
  spec.source = source;
  spec.total = samples_to_convert(o, s[0]);
  DatasetSink sink(o, spec);

  const int64_t row = a.row_bytes();
  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(row, 1));
  std::vector<uint8_t> chunk(static_cast<size_t>(rows_per_chunk * row));
  std::vector<float> vec(vectors ? static_cast<size_t>(s[1]) : 0);
  for (int64_t i = 0; i < spec.total; i += rows_per_chunk) {
    const int64_t n = std::min(rows_per_chunk, spec.total - i);
    read_exact(src, chunk.data(), n * row, "data");
    for (int64_t k = 0; k < n; ++k) {
      const uint8_t* p = chunk.data() + k * row;
      const int64_t label = labels.empty() ? -1 : labels[i + k];
      if (images) {
        sink.add(p, label);
        continue;
      }
      for (int64_t d = 0; d < s[1]; ++d) {
        if (a.itemsize == 4) {
          std::memcpy(&vec[d], p + 4 * d, 4);
        } else {
          double x;
          std::memcpy(&x, p + 8 * d, 8);
          vec[d] = static_cast<float>(x);
        }
        SCORCH_CHECK(std::isfinite(vec[d]), "'", a.name, "' sample ", i + k, " has a ",
                     a.itemsize == 8 ? "non-finite (or float32-overflowing)" : "non-finite",
                     " value at position ", d);
      }
      sink.add(vec.data(), label);
    }
  }
  return sink.finish();
}

}  // namespace

Manifest convert_npy(const ConvertOptions& o) {
  std::error_code ec;
  SCORCH_CHECK(fs::is_regular_file(o.input, ec), "'", o.input,
               "' is not a file; --from npy takes a .npy or .npz file");
  char lead[4] = {0, 0, 0, 0};
  std::ifstream(o.input, std::ios::binary).read(lead, 4);
  const bool npz = std::memcmp(lead, "PK", 2) == 0;
  SCORCH_CHECK(npz || std::memcmp(lead, kNpyMagic, 4) == 0, "'", o.input,
               "' is neither a .npy file (magic \\x93NUMPY) nor a .npz archive (zip)");

  std::vector<int64_t> labels;
  std::string source = "npy:" + absolute_path(o.input);
  if (!o.labels.empty()) {
    FileSource src(o.labels);
    labels = read_labels(src);
  }
  if (!npz) {
    SCORCH_CHECK(o.images_key.empty() && o.labels_key.empty(), "'", o.input,
                 "' is a .npy file; --images-key and --labels-key apply to .npz archives only");
    FileSource src(o.input);
    const NpyArray a = read_npy_header(src);
    if (!o.labels.empty()) source += " labels:" + absolute_path(o.labels);
    return write_samples(o, src, a, labels, source);
  }

  ZipArchive archive(o.input);
  const std::string images_key =
      o.images_key.empty() ? first_key(archive, {"x", "images", "data", "arr_0"}) : o.images_key;
  SCORCH_CHECK(!images_key.empty(), "'", o.input,
               "' has no array named x, images, data or arr_0 (it holds: ", key_list(archive),
               "); pick one with --images-key");
  SCORCH_CHECK(archive.has(images_key), "'", o.input, "' has no array '", images_key,
               "' (it holds: ", key_list(archive), ")");
  std::string labels_key;
  if (o.labels.empty()) {
    labels_key = o.labels_key.empty() ? first_key(archive, {"y", "labels", "arr_1"}, images_key)
                                      : o.labels_key;
    SCORCH_CHECK(labels_key.empty() || archive.has(labels_key), "'", o.input, "' has no array '",
                 labels_key, "' (it holds: ", key_list(archive), ")");
    SCORCH_CHECK(labels_key != images_key, "--labels-key and --images-key both name '", images_key,
                 "'");
    if (!labels_key.empty()) {
      ZipMemberSource src(archive, labels_key);
      labels = read_labels(src);
    }
  }
  source += "[" + images_key + (labels_key.empty() ? "" : "," + labels_key) + "]";
  if (!o.labels.empty()) source += " labels:" + absolute_path(o.labels);
  ZipMemberSource src(archive, images_key);
  const NpyArray a = read_npy_header(src);
  return write_samples(o, src, a, labels, source);
}


// ---------------------------------------------------------------------------
// Generic .npz reading and writing (npz.h).

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

torch::ScalarType torch_dtype(const NpyArray& a) {
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
  const std::string tmp = path + ".tmp";
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
    fs::remove(tmp, ec);
    fail("cannot write '" + tmp + "': " + why);
  }
  fs::rename(tmp, path, ec);
  SCORCH_CHECK(!ec, "cannot rename '", tmp, "' to '", path, "': ", ec.message());
}

std::map<std::string, torch::Tensor> read_npz(const std::string& path) {
  SCORCH_CHECK(fs::is_regular_file(path), "'", path, "' is not a file");
  ZipArchive archive(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& key : archive.keys()) {
    ZipMemberSource src(archive, key);
    const NpyArray a = read_npy_header(src);
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

}  // namespace scorch::data_tools
