// The NumPy converter: a .npy file (with optional labels .npy) or an .npz
// archive (arrays picked by key), read through data/npz.h and streamed into
// the sharded format. uint8 [N, H, W] / [N, H, W, C] become images,
// float32/64 [N, D] vectors; integer labels [N] of any width become int64.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/npz.h"
#include "data_tools/converters.h"

namespace scorch::data_tools {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kChunkBytes = 1 << 20;  // bytes per read while streaming samples

template <typename T>
void append_as_int64(const std::vector<uint8_t>& bytes, std::vector<int64_t>* out) {
  for (size_t i = 0; i + sizeof(T) <= bytes.size(); i += sizeof(T)) {
    T v;
    std::memcpy(&v, bytes.data() + i, sizeof(T));
    out->push_back(static_cast<int64_t>(v));
  }
}

// Integer labels [N] (or [N, 1]) as int64, each >= 0.
std::vector<int64_t> read_labels(NpySource& src) {
  const NpyHeader a = read_npy_header(src);
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
std::string first_key(const NpzArchive& archive, std::initializer_list<const char*> candidates,
                      const std::string& taken = "") {
  for (const char* k : candidates)
    if (archive.has(k) && k != taken) return k;
  return "";
}

std::string key_list(const NpzArchive& archive) {
  std::string s;
  for (const auto& k : archive.keys()) s += (s.empty() ? "" : ", ") + k;
  return s.empty() ? "none" : s;
}

// Streams the samples of `src` (header read into `a`) into a new dataset.
Manifest write_samples(const ConvertOptions& o, NpySource& src, const NpyHeader& a,
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
    NpyFile src(o.labels);
    labels = read_labels(src);
  }
  if (!npz) {
    SCORCH_CHECK(o.images_key.empty() && o.labels_key.empty(), "'", o.input,
                 "' is a .npy file; --images-key and --labels-key apply to .npz archives only");
    NpyFile src(o.input);
    const NpyHeader a = read_npy_header(src);
    if (!o.labels.empty()) source += " labels:" + absolute_path(o.labels);
    return write_samples(o, src, a, labels, source);
  }

  NpzArchive archive(o.input);
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
      NpzMember src(archive, labels_key);
      labels = read_labels(src);
    }
  }
  source += "[" + images_key + (labels_key.empty() ? "" : "," + labels_key) + "]";
  if (!o.labels.empty()) source += " labels:" + absolute_path(o.labels);
  NpzMember src(archive, images_key);
  const NpyHeader a = read_npy_header(src);
  return write_samples(o, src, a, labels, source);
}

}  // namespace scorch::data_tools
