// The sharded format: writer -> reader round trips (checked against HDF5's own
// reader), atomic writes, and every corruption the reader must name.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/checksum.h"
#include "data/shard_writer.h"
#include "data/sharded_dataset.h"
#include "testing/files.h"     // defines: read_file, write_bytes, random_bytes, entries
#include "testing/temp_dir.h"  // defines: TempDir

namespace scorch {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Image i has pixel values (i * 7 + p) mod 256 at flat HWC position p.
std::vector<uint8_t> test_image(int64_t i, int64_t bytes) {
  std::vector<uint8_t> v(static_cast<size_t>(bytes));
  for (int64_t p = 0; p < bytes; ++p) v[p] = static_cast<uint8_t>((i * 7 + p) % 256);
  return v;
}

Manifest write_images(const std::string& dir, int64_t n, int64_t shard_size, int gzip = 0,
                      std::vector<int64_t> shape = {5, 4, 3}) {
  ShardWriterOptions o;
  o.sample_shape = shape;
  o.has_labels = true;
  o.num_classes = 4;
  o.shard_size = shard_size;
  o.gzip_level = gzip;
  ShardWriter w(dir, o);
  const int64_t bytes = shape[0] * shape[1] * shape[2];
  for (int64_t i = 0; i < n; ++i) w.add(test_image(i, bytes).data(), i % 4);
  return w.finish();
}

// Reads image `row` of a shard through HDF5's own hyperslab reader.
std::vector<uint8_t> h5_read_row(const std::string& path, int64_t row, int64_t bytes) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "images", H5P_DEFAULT);
  hid_t space = H5Dget_space(d);
  hsize_t dims[4];
  H5Sget_simple_extent_dims(space, dims, nullptr);
  hsize_t start[4] = {static_cast<hsize_t>(row), 0, 0, 0}, count[4] = {1, dims[1], dims[2], dims[3]};
  H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hid_t mem = H5Screate_simple(4, count, nullptr);
  std::vector<uint8_t> out(static_cast<size_t>(bytes));
  EXPECT_GE(H5Dread(d, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, out.data()), 0);
  H5Sclose(mem), H5Sclose(space), H5Dclose(d), H5Fclose(f);
  return out;
}

TEST(Shards, ImageRoundTripAcrossShards) {
  for (int gzip : {0, 4}) {
    TempDir tmp("shards");
    const auto dir = (tmp.path / "ds").string();
    const auto m = write_images(dir, 23, 10, gzip);
    ASSERT_EQ(m.shards.size(), 3u);
    EXPECT_EQ(m.shards[2].num_samples, 3);
    EXPECT_EQ(m.shards[2].first_index, 20);
    EXPECT_EQ(m.compression, gzip ? "gzip" : "none");
    ShardedDataset d(dir);
    ASSERT_EQ(d.size(), 23);
    EXPECT_EQ(d.manifest().describe(), "5x4x3 uint8 images");
    std::vector<uint8_t> buf(60);
    for (int64_t i = 0; i < 23; ++i) {
      d.read(i, buf.data());
      EXPECT_EQ(buf, test_image(i, 60)) << "sample " << i << " gzip " << gzip;
      EXPECT_EQ(d.label(i), i % 4);
      // HDF5's own reader agrees with the direct chunk reads.
      const auto& s = m.shards[i / 10];
      EXPECT_EQ(h5_read_row(dir + "/" + s.file, i - s.first_index, 60), buf);
    }
    EXPECT_TRUE(check_dataset(dir, {}).empty());
    // Nothing but the manifest and shards, and no temporary directory beside it.
    int entries = 0;
    for (const auto& e : fs::directory_iterator(tmp.path)) ++entries, (void)e;
    EXPECT_EQ(entries, 1);
  }
}

TEST(Shards, VectorRoundTrip) {
  TempDir tmp("vectors");
  const auto dir = (tmp.path / "ds").string();
  ShardWriterOptions o;
  o.kind = SampleKind::kVectors;
  o.sample_shape = {2};
  o.shard_size = 100;
  ShardWriter w(dir, o);
  auto x = torch::randn({250, 2});
  w.add_batch(x);
  w.finish();
  ShardedDataset d(dir);
  EXPECT_EQ(d.size(), 250);
  EXPECT_EQ(d.manifest().shards.size(), 3u);
  EXPECT_EQ(d.label(0), -1);
  auto y = torch::empty({250, 2});
  for (int64_t i = 0; i < 250; ++i) d.read(i, y[i].data_ptr());
  EXPECT_TRUE(torch::equal(x, y));
}

TEST(Shards, WriterLeavesNothingBehindOnFailure) {
  TempDir tmp("atomic");
  const auto dir = (tmp.path / "ds").string();
  {
    ShardWriterOptions o;
    o.sample_shape = {2, 2, 1};
    o.has_labels = true;
    o.num_classes = 2;
    o.shard_size = 3;
    ShardWriter w(dir, o);
    uint8_t px[4] = {1, 2, 3, 4};
    for (int i = 0; i < 5; ++i) w.add(px, 1);
    EXPECT_THROW(w.add(px, 7), Error);  // label outside [0, 2)
  }  // destroyed without finish()
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(fs::is_empty(tmp.path));
  {
    ShardWriterOptions o;
    o.sample_shape = {2, 2, 1};
    ShardWriter w(dir, o);
    EXPECT_THROW(w.finish(), Error);  // empty
  }
  EXPECT_TRUE(fs::is_empty(tmp.path));

  // An existing dataset is refused without overwrite and survives a failed overwrite.
  write_images(dir, 5, 10);
  const auto before = testing::read_file(fs::path(dir) / kManifestFile);
  EXPECT_THROW(write_images(dir, 5, 10), Error);
  {
    ShardWriterOptions o;
    o.sample_shape = {2, 2, 1};
    o.overwrite = true;
    ShardWriter w(dir, o);
    uint8_t px[4] = {1, 2, 3, 4};
    w.add(px);
  }  // abandoned
  EXPECT_EQ(testing::read_file(fs::path(dir) / kManifestFile), before);
  EXPECT_TRUE(check_dataset(dir, {}).empty());
}

// ---- corruption: each problem is named with its file ----

struct Corrupt : ::testing::Test {
  TempDir tmp{"corrupt"};
  std::string dir = (tmp.path / "ds").string();
  Manifest m;
  void SetUp() override { m = write_images(dir, 25, 10); }
  std::string shard(int i) const { return dir + "/" + m.shards[i].file; }
  // Re-records shard i's size and checksum after the test rewrote it.
  void reseal(int i) {
    m.shards[i].bytes = static_cast<int64_t>(fs::file_size(shard(i)));
    m.shards[i].sha256 = sha256_file(shard(i));
    save_manifest();
  }
  void save_manifest() { std::ofstream(dir + "/" + kManifestFile) << to_json(m).dump(2); }
  // Replaces shard i with one whose images have HDF5 type `type` and dims `dims`.
  void rewrite_shard(int i, hid_t type, std::vector<hsize_t> dims) {
    fs::remove(shard(i));
    hid_t f = H5Fcreate(shard(i).c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, std::strlen(kShardFormatName));
    hid_t a = H5Acreate2(f, "format", str, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, str, kShardFormatName);
    H5Aclose(a);
    long long v = 1;
    a = H5Acreate2(f, "format_version", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t d = H5Dcreate2(f, "images", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (H5Tget_size(type) == 1) {  // fill image j of this shard with the value j
      hsize_t per = 1;
      for (size_t k = 1; k < dims.size(); ++k) per *= dims[k];
      std::vector<uint8_t> data(dims[0] * per);
      for (size_t k = 0; k < data.size(); ++k) data[k] = static_cast<uint8_t>(k / per);
      H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
    }
    H5Dclose(d), H5Sclose(space);
    hsize_t n = dims[0];
    space = H5Screate_simple(1, &n, nullptr);
    d = H5Dcreate2(f, "labels", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<int64_t> labels(n, 0);
    H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data());
    H5Dclose(d), H5Sclose(space), H5Sclose(scalar), H5Tclose(str), H5Fclose(f);
    reseal(i);
  }
  // The problems of the dataset, and that opening it throws a message with all of them.
  std::vector<std::string> problems() {
    auto p = check_dataset(dir, {});
    try {
      ShardedDataset d(dir);
      ADD_FAILURE() << "opened a corrupt dataset";
    } catch (const Error& e) {
      for (const auto& one : p) EXPECT_NE(std::string(e.what()).find(one), std::string::npos);
    }
    return p;
  }
  static bool has(const std::vector<std::string>& p, const std::string& a, const std::string& b) {
    for (const auto& s : p)
      if (s.find(a) != std::string::npos && s.find(b) != std::string::npos) return true;
    return false;
  }
};

TEST_F(Corrupt, MissingShard) {
  fs::remove(shard(1));
  const auto p = problems();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(has(p, "shard-00001.h5", "missing")) << p[0];
}

TEST_F(Corrupt, TruncatedShard) {
  fs::resize_file(shard(2), fs::file_size(shard(2)) / 2);
  const auto p = problems();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(has(p, "shard-00002.h5", "truncated")) << p[0];
  // Truncated and resealed (size and checksum updated): HDF5 itself must object.
  reseal(2);
  const auto q = problems();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_TRUE(has(q, "shard-00002.h5", "HDF5") || has(q, "shard-00002.h5", "truncated")) << q[0];
}

TEST_F(Corrupt, ChecksumMismatch) {
  {
    std::fstream f(shard(0), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(shard(0)) - 100));
    f.put('\x5a');
  }
  const auto p = problems();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(has(p, "shard-00000.h5", "checksum mismatch")) << p[0];
  EXPECT_TRUE(check_dataset(dir, {/*checksums=*/false}).empty());
}

TEST_F(Corrupt, WrongDtype) {
  rewrite_shard(1, H5T_STD_I16LE, {10, 5, 4, 3});
  const auto p = problems();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(has(p, "shard-00001.h5", "dtype int16")) << p[0];
}

TEST_F(Corrupt, WrongRank) {
  rewrite_shard(1, H5T_STD_U8LE, {10, 5, 12});
  const auto p = problems();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(has(p, "shard-00001.h5", "rank 3")) << p[0];
}

TEST_F(Corrupt, WrongShape) {
  rewrite_shard(1, H5T_STD_U8LE, {10, 5, 4, 1});
  const auto p = problems();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(has(p, "shard-00001.h5", "[10, 5, 4, 1]")) << p[0];
}

TEST_F(Corrupt, ContiguousShardIsReadableAndCountsMustAgree) {
  // A contiguous (unchunked) shard of the right shape is valid, as h5py writes by default ...
  rewrite_shard(1, H5T_STD_U8LE, {10, 5, 4, 3});
  ASSERT_TRUE(check_dataset(dir, {}).empty()) << check_dataset(dir, {})[0];
  ShardedDataset d(dir);
  std::vector<uint8_t> buf(60);
  d.read(17, buf.data());  // image 7 of shard 1
  EXPECT_EQ(buf, std::vector<uint8_t>(60, 7));
  d.read(9, buf.data());  // shard 0 is untouched
  EXPECT_EQ(buf, test_image(9, 60));
  // ... but one holding more rows than the manifest says is not.
  rewrite_shard(1, H5T_STD_U8LE, {12, 5, 4, 3});
  const auto p = problems();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(has(p, "shard-00001.h5", "holds 12 samples")) << p[0];
}

TEST_F(Corrupt, ChunkIndexMustAgreeWithHdf5) {
  // Swap the index entries of images 0 and 1 of shard 0, as a damaged writer might.
  hid_t f = H5Fopen(shard(0).c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "chunk_index", H5P_DEFAULT);
  std::vector<uint64_t> index(30);
  H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, index.data());
  std::swap(index[0], index[3]);
  H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, index.data());
  H5Dclose(d), H5Fclose(f);
  reseal(0);
  const auto p = problems();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(has(p, "shard-00000.h5", "'chunk_index' disagrees")) << p[0];
}

TEST_F(Corrupt, ManifestDisagreesWithItself) {
  m.num_samples = 30;
  m.shards[2].first_index = 21;
  save_manifest();
  const auto p = problems();
  EXPECT_EQ(p.size(), 2u);
  EXPECT_TRUE(has(p, "manifest.json", "num_samples is 30 but the shards hold 25"));
  EXPECT_TRUE(has(p, "manifest.json", "first_index is 21"));
}

TEST_F(Corrupt, EmptyDataset) {
  m.shards.clear();
  m.num_samples = 0;
  save_manifest();
  const auto p = problems();
  EXPECT_TRUE(has(p, "manifest.json", "empty")) << p[0];
}

TEST_F(Corrupt, EveryProblemIsReported) {
  fs::remove(shard(0));
  fs::resize_file(shard(2), 100);
  const auto p = problems();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_TRUE(has(p, "shard-00000.h5", "missing"));
  EXPECT_TRUE(has(p, "shard-00002.h5", "truncated"));
}

TEST_F(Corrupt, UnreadablePaths) {
  EXPECT_TRUE(has(check_dataset(dir + "/nope", {}), "nope", "does not exist"));
  EXPECT_TRUE(has(check_dataset(shard(0), {}), "shard-00000.h5", "not a directory"));
  fs::remove(dir + "/" + kManifestFile);
  EXPECT_TRUE(has(check_dataset(dir, {}), dir, "no manifest.json"));
  std::ofstream(dir + "/" + kManifestFile) << "{ not json";
  EXPECT_TRUE(has(check_dataset(dir, {}), "manifest.json", "not valid JSON"));
  std::ofstream(dir + "/" + kManifestFile) << R"({"format": "scorch-shards", "format_version": 9})";
  const auto p = check_dataset(dir, {});
  EXPECT_TRUE(has(p, "manifest.json", "format_version 9"));
  EXPECT_TRUE(has(p, "manifest.json", "missing field 'kind'"));
}

TEST_F(Corrupt, LabelsOutOfRange) {
  m.num_classes = 2;  // the data has labels 0..3
  save_manifest();
  const auto p = problems();
  ASSERT_EQ(p.size(), 3u);  // every shard
  EXPECT_TRUE(has(p, "shard-00000.h5", "label(s) outside [0, 2)"));
}

}  // namespace
}  // namespace scorch
