// IDX (MNIST) converter: exact pixels and labels from hand-written IDX files,
// plain and gzip, split selection, limit, sharding, and bad inputs; the real
// Fashion-MNIST when its Debian package is installed.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>

#include "data_tools/convert.h"
#include "testing/conversion.h"    // defines: convert_options, read_dataset
#include "testing/dependencies.h"  // defines: SCORCH_REQUIRE_OR_SKIP, kFashionMnistDir
#include "testing/expect_error.h"  // defines: expect_error
#include "testing/files.h"         // defines: read_file, write_bytes, random_bytes, entries
#include "testing/temp_dir.h"      // defines: TempDir

namespace scorch::testing {
namespace {
namespace fs = std::filesystem;
using data_tools::convert_dataset;

// An IDX file: big-endian magic and sizes, then the bytes.
std::string idx_file(uint32_t magic, const std::vector<uint32_t>& dims,
                     const std::vector<uint8_t>& data) {
  std::string s;
  auto be32 = [&s](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
      s.push_back(static_cast<char>((v >> shift) & 0xff));
  };
  be32(magic);
  for (auto d : dims) be32(d);
  return s + as_string(data);
}

void write_gz(const fs::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

struct IdxSet {
  std::vector<uint8_t> pixels;  // [N, H, W]
  std::vector<uint8_t> labels;  // [N]
};

// Writes <prefix>-images-idx3-ubyte / <prefix>-labels-idx1-ubyte (gzipped if `gz`).
IdxSet write_idx(const fs::path& dir, const std::string& prefix, uint32_t n, uint32_t h, uint32_t w,
                 bool gz, uint32_t seed) {
  IdxSet s;
  s.pixels = random_bytes(size_t{n} * h * w, seed);
  for (uint32_t i = 0; i < n; ++i) s.labels.push_back(static_cast<uint8_t>((i * 7 + seed) % 6));
  const auto images = idx_file(0x803, {n, h, w}, s.pixels);
  const auto labels = idx_file(0x801, {n}, s.labels);
  fs::create_directories(dir);
  if (gz) {
    write_gz(dir / (prefix + "-images-idx3-ubyte.gz"), images);
    write_gz(dir / (prefix + "-labels-idx1-ubyte.gz"), labels);
  } else {
    write_bytes(dir / (prefix + "-images-idx3-ubyte"), images);
    write_bytes(dir / (prefix + "-labels-idx1-ubyte"), labels);
  }
  return s;
}

TEST(IdxConvert, DirectoryTrainSplitExactPixelsLabelsAndShards) {
  TempDir tmp("idx_train");
  const auto in = tmp.path / "mnist";
  const auto train = write_idx(in, "train", 7, 3, 4, false, 1);
  write_idx(in, "t10k", 2, 3, 4, false, 2);
  auto o = convert_options("idx", in.string(), (tmp.path / "out").string());
  o.shard_size = 3;
  const Manifest m = convert_dataset(o);
  EXPECT_EQ(m.num_samples, 7);
  EXPECT_EQ(m.sample_shape, (std::vector<int64_t>{3, 4, 1}));
  EXPECT_EQ(m.num_classes, 6);  // labels (7i + 1) % 6 over i < 7 reach 5
  EXPECT_EQ(m.split, "train");
  EXPECT_NE(m.source.find("train-images-idx3-ubyte"), std::string::npos) << m.source;

  const auto d = read_dataset(tmp.path / "out");
  EXPECT_EQ(d.shard_sizes, (std::vector<int64_t>{3, 3, 1}));
  EXPECT_EQ(d.sample_dims, (std::vector<int64_t>{3, 4, 1}));
  EXPECT_EQ(d.images, train.pixels);
  EXPECT_EQ(d.labels, std::vector<int64_t>(train.labels.begin(), train.labels.end()));
  EXPECT_EQ(d.manifest["num_samples"], 7);
  EXPECT_EQ(d.manifest["num_classes"], 6);
}

TEST(IdxConvert, GzipTestSplitWithLimit) {
  TempDir tmp("idx_gz");
  const auto in = tmp.path / "fashion";
  write_idx(in, "train", 5, 2, 2, true, 3);
  const auto test = write_idx(in, "t10k", 9, 2, 5, true, 4);
  auto o = convert_options("idx", in.string(), (tmp.path / "out").string());
  o.split = "test";
  o.limit = 4;
  o.gzip_level = 4;
  const Manifest m = convert_dataset(o);
  EXPECT_EQ(m.split, "test");
  EXPECT_EQ(m.compression, "gzip");
  const auto d = read_dataset(tmp.path / "out");
  ASSERT_EQ(d.count, 4);
  EXPECT_EQ(d.sample_dims, (std::vector<int64_t>{2, 5, 1}));
  EXPECT_EQ(d.images, std::vector<uint8_t>(test.pixels.begin(), test.pixels.begin() + 4 * 10));
  EXPECT_EQ(d.labels, std::vector<int64_t>(test.labels.begin(), test.labels.begin() + 4));
  EXPECT_EQ(m.num_classes, 6);  // from the whole labels file, not the first 4
}

TEST(IdxConvert, ImagesFileFindsLabelsBesideItOrGoesUnlabelled) {
  TempDir tmp("idx_file");
  const auto s = write_idx(tmp.path, "train", 3, 2, 2, true, 5);
  const auto images = tmp.path / "train-images-idx3-ubyte.gz";
  convert_dataset(convert_options("idx", images.string(), (tmp.path / "a").string()));
  EXPECT_EQ(read_dataset(tmp.path / "a").labels,
            std::vector<int64_t>(s.labels.begin(), s.labels.end()));

  fs::remove(tmp.path / "train-labels-idx1-ubyte.gz");
  const Manifest m =
      convert_dataset(convert_options("idx", images.string(), (tmp.path / "b").string()));
  EXPECT_FALSE(m.has_labels);
  const auto d = read_dataset(tmp.path / "b");
  EXPECT_TRUE(d.labels.empty());
  EXPECT_EQ(d.images, s.pixels);
}

TEST(IdxConvert, BadMagicNamesTheFile) {
  TempDir tmp("idx_magic");
  const auto path = tmp.path / "train-images-idx3-ubyte";
  write_bytes(path, idx_file(0x0d03, {1, 2, 2}, std::vector<uint8_t>(16)));  // float32 data
  expect_error(
      [&] { convert_dataset(convert_options("idx", path.string(), (tmp.path / "o").string())); },
      {path.string(), "magic number 0x00000d03", "expected 0x00000803", "only uint8"});
  const auto labels = tmp.path / "t-labels-idx1-ubyte";
  write_bytes(labels, idx_file(0x801, {1}, {0}));
  expect_error(
      [&] { convert_dataset(convert_options("idx", labels.string(), (tmp.path / "o").string())); },
      {labels.string(), "is an IDX labels file"});
  EXPECT_FALSE(fs::exists(tmp.path / "o"));
}

TEST(IdxConvert, TruncatedFilesReportExpectedAndActualBytes) {
  TempDir tmp("idx_trunc");
  const auto full = idx_file(0x803, {4, 3, 3}, random_bytes(36, 6));  // 16 + 36 bytes
  const auto plain = tmp.path / "plain-images-idx3-ubyte";
  write_bytes(plain, full.substr(0, full.size() - 5));
  expect_error(
      [&] { convert_dataset(convert_options("idx", plain.string(), (tmp.path / "o").string())); },
      {plain.string(), "truncated", "expected 52 bytes", "got 47"});
  // A gzip stream cut short: zlib reports what it could decompress.
  const auto gz = tmp.path / "gz-images-idx3-ubyte.gz";
  write_gz(gz, full);
  const auto packed = read_file(gz);
  write_bytes(gz, packed.substr(0, packed.size() - 12));
  expect_error(
      [&] { convert_dataset(convert_options("idx", gz.string(), (tmp.path / "o").string())); },
      {gz.string(), "truncated", "expected 52 bytes after decompression"});
  EXPECT_EQ(entries(tmp.path),
            (std::vector<std::string>{"gz-images-idx3-ubyte.gz", "plain-images-idx3-ubyte"}));
}

TEST(IdxConvert, LabelCountMustMatchImageCount) {
  TempDir tmp("idx_count");
  write_bytes(tmp.path / "train-images-idx3-ubyte",
              idx_file(0x803, {3, 2, 2}, random_bytes(12, 7)));
  write_bytes(tmp.path / "train-labels-idx1-ubyte", idx_file(0x801, {2}, {0, 1}));
  expect_error(
      [&] { convert_dataset(convert_options("idx", tmp.str(), (tmp.path / "o").string())); },
      {"train-labels-idx1-ubyte' holds 2 labels", "train-images-idx3-ubyte' holds 3 images"});
}

TEST(IdxConvert, MissingSplitFilesAreNamed) {
  TempDir tmp("idx_missing");
  write_idx(tmp.path, "train", 2, 2, 2, false, 8);
  auto o = convert_options("idx", tmp.str(), (tmp.path / "o").string());
  o.split = "test";
  expect_error([&] { convert_dataset(o); }, {tmp.str(), "t10k-images-idx3-ubyte"});
}

// An existing dataset needs --overwrite, and survives a failed overwrite.
TEST(IdxConvert, ExistingOutputNeedsOverwriteAndSurvivesFailure) {
  TempDir tmp("idx_exists");
  const auto good = write_idx(tmp.path / "good", "train", 3, 2, 2, false, 9);
  write_bytes(tmp.path / "bad" / "train-images-idx3-ubyte", "garbage!");
  const auto out = tmp.path / "out";
  convert_dataset(convert_options("idx", (tmp.path / "good").string(), out.string()));
  const auto manifest = read_file(out / "manifest.json");

  expect_error(
      [&] { convert_dataset(convert_options("idx", (tmp.path / "good").string(), out.string())); },
      {out.string(), "already exists", "--overwrite"});
  auto o = convert_options("idx", (tmp.path / "bad").string(), out.string());
  o.overwrite = true;
  expect_error([&] { convert_dataset(o); }, {"bad/train-images-idx3-ubyte", "magic"});
  EXPECT_EQ(read_file(out / "manifest.json"), manifest);
  EXPECT_EQ(read_dataset(out).images, good.pixels);
  EXPECT_EQ(entries(tmp.path), (std::vector<std::string>{"bad", "good", "out"}));

  // --overwrite never replaces what is not a dataset.
  write_bytes(tmp.path / "notes" / "todo.txt", "keep me");
  o = convert_options("idx", (tmp.path / "good").string(), (tmp.path / "notes").string());
  o.overwrite = true;
  expect_error([&] { convert_dataset(o); }, {"notes' is neither", "left alone"});
  EXPECT_EQ(read_file(tmp.path / "notes" / "todo.txt"), "keep me");

  write_idx(tmp.path / "good2", "train", 2, 2, 2, false, 10);
  o = convert_options("idx", (tmp.path / "good2").string(), out.string());
  o.overwrite = true;
  convert_dataset(o);
  EXPECT_EQ(read_dataset(out).count, 2);
}

// The installed Fashion-MNIST (Debian's dataset-fashion-mnist), test split.
TEST(IdxConvert, RealFashionMnistTestSplit) {
  const fs::path dir = kFashionMnistDir;
  SCORCH_REQUIRE_OR_SKIP(
      fs::exists(dir / "t10k-images-idx3-ubyte.gz"),
      (dir / "t10k-images-idx3-ubyte.gz").string() + " (Debian package dataset-fashion-mnist)");
  TempDir tmp("idx_fashion");
  auto o = convert_options("idx", dir.string(), (tmp.path / "fashion").string());
  o.split = "test";
  o.limit = 1000;
  o.shard_size = 400;
  const Manifest m = convert_dataset(o);
  EXPECT_EQ(m.num_samples, 1000);
  EXPECT_EQ(m.num_classes, 10);
  EXPECT_EQ(m.sample_shape, (std::vector<int64_t>{28, 28, 1}));
  const auto d = read_dataset(tmp.path / "fashion");
  EXPECT_EQ(d.shard_sizes, (std::vector<int64_t>{400, 400, 200}));
  // The first test image, read here straight from the gzip file.
  gzFile f = gzopen((dir / "t10k-images-idx3-ubyte.gz").c_str(), "rb");
  std::vector<uint8_t> head(16 + 784);
  ASSERT_EQ(gzread(f, head.data(), static_cast<unsigned>(head.size())), 800);
  gzclose(f);
  EXPECT_TRUE(std::equal(head.begin() + 16, head.end(), d.images.begin()));
  std::vector<int> per_class(10);
  for (auto l : d.labels) per_class.at(static_cast<size_t>(l))++;
  for (int c = 0; c < 10; ++c) EXPECT_GT(per_class[c], 50) << "class " << c;
}

}  // namespace
}  // namespace scorch::testing
