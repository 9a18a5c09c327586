// NumPy converter: .npy files (header versions 1-3) and .npz archives
// (stored and deflated, written here with libzip) built byte by byte, read
// back exactly; dtype conversions and the malformed inputs it must reject.
#include <gtest/gtest.h>
#include <zip.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "data_tools/convert.h"
#include "testing/conversion.h"    // defines: convert_options, read_dataset
#include "testing/expect_error.h"  // defines: expect_error
#include "testing/files.h"         // defines: read_file, write_bytes, random_bytes, entries
#include "testing/temp_dir.h"      // defines: TempDir

namespace scorch::testing {
namespace {
namespace fs = std::filesystem;
using data_tools::convert_dataset;
using namespace std::string_literals;

// A .npy file as numpy.save writes it: header padded to a multiple of 64.
std::string npy(const std::string& descr, const std::vector<int64_t>& shape,
                const std::string& data, int version = 1, bool fortran = false) {
  std::string dims;
  for (auto d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 2);
  if (shape.size() == 1) dims.resize(dims.size() - 1);  // "(5,)"
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': (" +
                       dims + "), }";
  const size_t prefix = 6 + 2 + (version == 1 ? 2 : 4);
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string s = "\x93NUMPY";
  s.push_back(static_cast<char>(version));
  s.push_back(0);
  const size_t len = header.size();
  for (size_t i = 0; i < (version == 1 ? 2u : 4u); ++i)
    s.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  return s + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& values) {
  std::string s(values.size() * sizeof(T), '\0');
  std::memcpy(s.data(), values.data(), s.size());
  return s;
}

void write_npz(const fs::path& path,
               const std::vector<std::pair<std::string, std::string>>& members, bool deflate) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(z, nullptr);
  for (const auto& [key, bytes] : members) {
    zip_source_t* src = zip_source_buffer(z, bytes.data(), bytes.size(), 0);
    const zip_int64_t i = zip_file_add(z, (key + ".npy").c_str(), src, ZIP_FL_OVERWRITE);
    ASSERT_GE(i, 0);
    zip_set_file_compression(z, static_cast<zip_uint64_t>(i),
                             deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(z), 0);
}

TEST(NpyConvert, Uint8NhwcImagesWithSeparateLabels) {
  TempDir tmp("npy_nhwc");
  const auto pixels = random_bytes(5 * 3 * 2 * 3, 1);
  write_bytes(tmp.path / "x.npy", npy("|u1", {5, 3, 2, 3}, as_string(pixels)));
  const std::vector<int64_t> labels = {3, 0, 1, 3, 2};
  write_bytes(tmp.path / "y.npy", npy("<i8", {5}, raw(labels)));
  auto o = convert_options("npy", (tmp.path / "x.npy").string(), (tmp.path / "out").string());
  o.labels = (tmp.path / "y.npy").string();
  o.shard_size = 2;
  const Manifest m = convert_dataset(o);
  EXPECT_EQ(m.num_classes, 4);
  EXPECT_EQ(m.kind, SampleKind::kImages);
  const auto d = read_dataset(tmp.path / "out");
  EXPECT_EQ(d.sample_dims, (std::vector<int64_t>{3, 2, 3}));
  EXPECT_EQ(d.shard_sizes, (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(d.images, pixels);
  EXPECT_EQ(d.labels, labels);
}

TEST(NpyConvert, NhwImagesGetOneChannelAndAnyIntegerLabelWidth) {
  TempDir tmp("npy_nhw");
  const auto pixels = random_bytes(4 * 2 * 5, 2);
  write_bytes(tmp.path / "x.npy", npy("<u1", {4, 2, 5}, as_string(pixels)));
  const std::vector<int64_t> expected = {1, 0, 2, 1};
  write_bytes(tmp.path / "u1.npy", npy("|u1", {4}, "\x01\x00\x02\x01"s));
  write_bytes(tmp.path / "i2.npy", npy("<i2", {4}, raw(std::vector<int16_t>{1, 0, 2, 1})));
  write_bytes(tmp.path / "u4.npy", npy("<u4", {4, 1}, raw(std::vector<uint32_t>{1, 0, 2, 1})));
  for (const char* labels : {"u1", "i2", "u4"}) {
    auto o = convert_options("npy", (tmp.path / "x.npy").string(),
                             (tmp.path / labels).string() + "_out");
    o.labels = (tmp.path / (std::string(labels) + ".npy")).string();
    convert_dataset(o);
    const auto d = read_dataset((tmp.path / labels).string() + "_out");
    EXPECT_EQ(d.sample_dims, (std::vector<int64_t>{2, 5, 1})) << labels;
    EXPECT_EQ(d.images, pixels) << labels;
    EXPECT_EQ(d.labels, expected) << labels;
  }
}

TEST(NpyConvert, FloatVectorsInHeaderVersions2And3) {
  TempDir tmp("npy_vec");
  const std::vector<double> f8 = {0.5, -1.25, 1e-3, 3.0e10, -7.0, 2.0 / 3.0};
  write_bytes(tmp.path / "f8.npy", npy("<f8", {3, 2}, raw(f8), 2));
  auto o = convert_options("npy", (tmp.path / "f8.npy").string(), (tmp.path / "a").string());
  o.limit = 2;
  Manifest m = convert_dataset(o);
  EXPECT_EQ(m.kind, SampleKind::kVectors);
  EXPECT_FALSE(m.has_labels);
  auto d = read_dataset(tmp.path / "a");
  EXPECT_EQ(d.sample_dims, std::vector<int64_t>{2});
  ASSERT_EQ(d.vectors.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(d.vectors[i], static_cast<float>(f8[i]));

  const std::vector<float> f4 = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f};
  write_bytes(tmp.path / "f4.npy", npy("<f4", {2, 3}, raw(f4), 3));
  m = convert_dataset(
      convert_options("npy", (tmp.path / "f4.npy").string(), (tmp.path / "b").string()));
  EXPECT_EQ(m.sample_shape, std::vector<int64_t>{3});
  EXPECT_EQ(read_dataset(tmp.path / "b").vectors, f4);
}

TEST(NpyConvert, NpzStoredAndDeflatedWithDefaultAndChosenKeys) {
  TempDir tmp("npz");
  const auto pixels = random_bytes(6 * 2 * 2, 3);
  const std::vector<int32_t> labels = {0, 1, 2, 0, 1, 2};
  const auto x = npy("|u1", {6, 2, 2}, as_string(pixels));
  const auto y = npy("<i4", {6}, raw(labels));
  const std::vector<int64_t> labels64(labels.begin(), labels.end());
  struct Case {
    std::vector<std::pair<std::string, std::string>> members;
    bool deflate;
    std::string images_key, labels_key;
  };
  const std::vector<Case> cases = {
      {{{"x", x}, {"y", y}}, false, "", ""},
      {{{"images", x}, {"labels", y}}, true, "", ""},
      {{{"arr_0", x}, {"arr_1", y}}, true, "", ""},
      {{{"feat", x}, {"cls", y}, {"other", y}}, true, "feat", "cls"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto path = tmp.path / ("d" + std::to_string(i) + ".npz");
    write_npz(path, cases[i].members, cases[i].deflate);
    const auto out = tmp.path / ("out" + std::to_string(i));
    auto o = convert_options("npy", path.string(), out.string());
    o.images_key = cases[i].images_key;
    o.labels_key = cases[i].labels_key;
    const Manifest m = convert_dataset(o);
    EXPECT_EQ(m.num_classes, 3) << i;
    const auto d = read_dataset(out);
    EXPECT_EQ(d.images, pixels) << i;
    EXPECT_EQ(d.labels, labels64) << i;
  }
  // Only samples: an unlabelled dataset.
  write_npz(tmp.path / "x_only.npz", {{"x", x}}, false);
  const Manifest m = convert_dataset(
      convert_options("npy", (tmp.path / "x_only.npz").string(), (tmp.path / "x_only").string()));
  EXPECT_FALSE(m.has_labels);
}

TEST(NpyConvert, NpzMissingKeysListWhatTheArchiveHolds) {
  TempDir tmp("npz_keys");
  const auto x = npy("|u1", {1, 2, 2}, std::string(4, '\0'));
  write_npz(tmp.path / "a.npz", {{"foo", x}, {"bar", x}}, false);
  const auto path = (tmp.path / "a.npz").string(), out = (tmp.path / "o").string();
  expect_error([&] { convert_dataset(convert_options("npy", path, out)); },
               {path, "no array named x, images, data or arr_0", "foo", "bar", "--images-key"});
  auto o = convert_options("npy", path, out);
  o.images_key = "foo";
  o.labels_key = "baz";
  expect_error([&] { convert_dataset(o); }, {path, "no array 'baz'"});
}

TEST(NpyConvert, FortranOrderIsRejected) {
  TempDir tmp("npy_fortran");
  const auto path = tmp.path / "f.npy";
  write_bytes(path, npy("|u1", {2, 2, 2}, std::string(8, '\1'), 1, true));
  expect_error(
      [&] { convert_dataset(convert_options("npy", path.string(), (tmp.path / "o").string())); },
      {path.string(), "Fortran", "fortran_order: True", "ascontiguousarray"});
}

TEST(NpyConvert, TruncatedAndOversizedFilesAreRejected) {
  TempDir tmp("npy_trunc");
  const auto path = tmp.path / "t.npy";
  const auto full = npy("<f4", {4, 3}, std::string(48, '\0'));
  write_bytes(path, full.substr(0, full.size() - 10));
  expect_error(
      [&] { convert_dataset(convert_options("npy", path.string(), (tmp.path / "o").string())); },
      {path.string(), "truncated", "float32 [4, 3]", "48 bytes", "only 38"});
  write_bytes(path, full + "xx");
  expect_error(
      [&] { convert_dataset(convert_options("npy", path.string(), (tmp.path / "o").string())); },
      {path.string(), "2 bytes more"});
  write_bytes(path, "\x93NUMP"s);
  expect_error(
      [&] { convert_dataset(convert_options("npy", path.string(), (tmp.path / "o").string())); },
      {path.string(), "magic"});
  EXPECT_EQ(entries(tmp.path), std::vector<std::string>{"t.npy"});
}

TEST(NpyConvert, UnsupportedDtypesAndShapesExplainTheFix) {
  TempDir tmp("npy_dtype");
  const auto check = [&](const std::string& bytes, const std::vector<std::string>& parts) {
    write_bytes(tmp.path / "a.npy", bytes);
    auto all = parts;
    all.push_back((tmp.path / "a.npy").string());
    expect_error(
        [&] {
          convert_dataset(
              convert_options("npy", (tmp.path / "a.npy").string(), (tmp.path / "o").string()));
        },
        all);
  };
  check(npy(">f4", {1, 2}, std::string(8, '\0')), {"big-endian"});
  check(npy("<c8", {1, 2}, std::string(16, '\0')), {"dtype '<c8'"});
  check(npy("<f4", {1, 2, 2, 3}, std::string(48, '\0')),
        {"float32 [1, 2, 2, 3]", "astype(np.uint8)"});
  check(npy("|u1", {1, 3, 5, 5}, std::string(75, '\0')),
        {"uint8 [1, 3, 5, 5]", "transpose(0, 2, 3, 1)"});
  check(npy("<i8", {2, 2}, std::string(32, '\0')), {"int64 [2, 2]", "astype(np.float32)"});
  check(npy("<f4", {1, 2}, raw(std::vector<float>{1.f, NAN})), {"sample 0", "non-finite"});
}

TEST(NpyConvert, LabelProblemsAreNamed) {
  TempDir tmp("npy_labels");
  write_bytes(tmp.path / "x.npy", npy("|u1", {3, 2, 2}, std::string(12, '\0')));
  const auto check = [&](const std::string& labels, const std::vector<std::string>& parts) {
    write_bytes(tmp.path / "y.npy", labels);
    auto o = convert_options("npy", (tmp.path / "x.npy").string(), (tmp.path / "o").string());
    o.labels = (tmp.path / "y.npy").string();
    expect_error([&] { convert_dataset(o); }, parts);
  };
  const auto y = (tmp.path / "y.npy").string();
  check(npy("<i8", {2}, raw(std::vector<int64_t>{0, 1})), {"2 entries", "x.npy' holds 3 samples"});
  check(npy("<i4", {3}, raw(std::vector<int32_t>{0, -1, 1})), {y, "-1 at index 1", ">= 0"});
  check(npy("<f4", {3}, raw(std::vector<float>{0, 1, 1})), {y, "float32 [3]", "integer labels"});
  EXPECT_FALSE(fs::exists(tmp.path / "o"));
}

}  // namespace
}  // namespace scorch::testing
