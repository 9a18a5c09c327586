// CIFAR converter: hand-written CIFAR-10 and CIFAR-100 records, checking the
// CHW -> HWC reordering pixel by pixel, labels, class names, splits, limit,
// sharding, and malformed batches.
#include <gtest/gtest.h>

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

// The value every test record holds at channel c, row y, column x of image i:
// distinct enough that any transposition or plane mix-up changes it.
uint8_t pixel(int64_t i, int64_t c, int64_t y, int64_t x) {
  return static_cast<uint8_t>((i * 31 + c * 101 + y * 7 + x * 3) % 251);
}

// Records for images first..first+n-1, with `label_bytes` label bytes each
// (the last one the label, label = i % classes), pixels in CHW order.
std::string records(int64_t first, int64_t n, int label_bytes, int64_t classes) {
  std::string s;
  for (int64_t i = first; i < first + n; ++i) {
    if (label_bytes == 2) s.push_back(static_cast<char>(i % 20));  // coarse label
    s.push_back(static_cast<char>(i % classes));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) s.push_back(static_cast<char>(pixel(i, c, y, x)));
  }
  return s;
}

// Checks images first..first+count-1 came out HWC with their labels.
void expect_images(const DatasetContents& d, int64_t first, int64_t count, int64_t classes) {
  ASSERT_EQ(d.count, count);
  ASSERT_EQ(d.sample_dims, (std::vector<int64_t>{32, 32, 3}));
  int64_t wrong = 0;
  for (int64_t k = 0; k < count; ++k) {
    EXPECT_EQ(d.labels[k], (first + k) % classes) << "image " << k;
    for (int64_t y = 0; y < 32; ++y)
      for (int64_t x = 0; x < 32; ++x)
        for (int64_t c = 0; c < 3; ++c)
          wrong += d.images[((k * 32 + y) * 32 + x) * 3 + c] != pixel(first + k, c, y, x);
  }
  EXPECT_EQ(wrong, 0) << "pixels not in HWC order";
}

// data_batch_1..5 with 2, 3, 1, 2, 2 records; test_batch with 3.
fs::path write_cifar10(const fs::path& dir) {
  const int64_t sizes[] = {2, 3, 1, 2, 2};
  int64_t first = 0;
  for (int b = 0; b < 5; ++b) {
    write_bytes(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"),
                records(first, sizes[b], 1, 10));
    first += sizes[b];
  }
  write_bytes(dir / "test_batch.bin", records(100, 3, 1, 10));
  return dir;
}

const std::vector<std::string> kCifar10Names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};

TEST(CifarConvert, Cifar10TrainSplitAcrossFiveBatchesInHwcOrder) {
  TempDir tmp("cifar10");
  const auto dir = write_cifar10(tmp.path / "cifar-10-batches-bin");
  std::string names;
  for (const auto& n : kCifar10Names) names += n + "\n";
  write_bytes(dir / "batches.meta.txt", names + "\n\n");
  auto o = convert_options("cifar", tmp.str(), (tmp.path / "out").string());  // finds the subfolder
  o.shard_size = 4;
  const Manifest m = convert_dataset(o);
  EXPECT_EQ(m.num_classes, 10);
  EXPECT_EQ(m.class_names, kCifar10Names);
  const auto d = read_dataset(tmp.path / "out");
  EXPECT_EQ(d.shard_sizes, (std::vector<int64_t>{4, 4, 2}));
  expect_images(d, 0, 10, 10);
  EXPECT_EQ(d.manifest["class_names"][9], "truck");
}

TEST(CifarConvert, Cifar10TestSplitLimitAndSingleFile) {
  TempDir tmp("cifar10_test");
  const auto dir = write_cifar10(tmp.path);
  auto o = convert_options("cifar", dir.string(), (tmp.path / "test").string());
  o.split = "test";
  const Manifest m = convert_dataset(o);
  EXPECT_TRUE(m.class_names.empty());  // no batches.meta.txt
  expect_images(read_dataset(tmp.path / "test"), 100, 3, 10);

  o = convert_options("cifar", (dir / "data_batch_2.bin").string(), (tmp.path / "one").string());
  o.limit = 2;
  convert_dataset(o);
  expect_images(read_dataset(tmp.path / "one"), 2, 2, 10);

  // Limit across batch files: the first 4 of the train split span three files.
  o = convert_options("cifar", dir.string(), (tmp.path / "four").string());
  o.limit = 4;
  convert_dataset(o);
  expect_images(read_dataset(tmp.path / "four"), 0, 4, 10);
}

TEST(CifarConvert, Cifar100UsesFineLabelsAndNames) {
  TempDir tmp("cifar100");
  write_bytes(tmp.path / "train.bin", records(0, 5, 2, 100));
  write_bytes(tmp.path / "test.bin", records(95, 4, 2, 100));
  std::string names;
  for (int c = 0; c < 100; ++c) names += "class_" + std::to_string(c) + "\n";
  write_bytes(tmp.path / "fine_label_names.txt", names);
  auto o = convert_options("cifar", tmp.str(), (tmp.path / "out").string());
  o.split = "test";
  const Manifest m = convert_dataset(o);
  EXPECT_EQ(m.num_classes, 100);
  ASSERT_EQ(m.class_names.size(), 100u);
  EXPECT_EQ(m.class_names[42], "class_42");
  expect_images(read_dataset(tmp.path / "out"), 95, 4, 100);  // fine labels 95..98

  // A file of another name is recognised by its record size (3074 bytes).
  write_bytes(tmp.path / "mine.dat", records(3, 2, 2, 100));
  convert_dataset(
      convert_options("cifar", (tmp.path / "mine.dat").string(), (tmp.path / "mine").string()));
  expect_images(read_dataset(tmp.path / "mine"), 3, 2, 100);
}

TEST(CifarConvert, TruncatedBatchNamesFileAndSizes) {
  TempDir tmp("cifar_trunc");
  const auto dir = write_cifar10(tmp.path / "c");
  const auto bad = dir / "data_batch_3.bin";
  write_bytes(bad, records(0, 2, 1, 10).substr(0, 3073 + 100));
  expect_error(
      [&] { convert_dataset(convert_options("cifar", dir.string(), (tmp.path / "o").string())); },
      {bad.string(), "truncated", "3173 bytes", "3073-byte records", "1 records and 100 bytes"});
  EXPECT_EQ(entries(tmp.path), std::vector<std::string>{"c"});
}

TEST(CifarConvert, MissingBatchAndForeignFilesAreErrors) {
  TempDir tmp("cifar_missing");
  const auto dir = write_cifar10(tmp.path);
  fs::remove(dir / "data_batch_4.bin");
  expect_error(
      [&] { convert_dataset(convert_options("cifar", dir.string(), (tmp.path / "o").string())); },
      {"data_batch_4.bin' is missing"});
  TempDir empty("cifar_empty");
  expect_error(
      [&] { convert_dataset(convert_options("cifar", empty.str(), (tmp.path / "o").string())); },
      {empty.str(), "no CIFAR binary batches"});
  write_bytes(tmp.path / "odd.bin", std::string(1000, 'x'));
  expect_error(
      [&] {
        convert_dataset(
            convert_options("cifar", (tmp.path / "odd.bin").string(), (tmp.path / "o").string()));
      },
      {"odd.bin", "not a CIFAR binary batch", "1000 bytes"});
}

TEST(CifarConvert, Cifar10LabelOutOfRangeNamesRecord) {
  TempDir tmp("cifar_label");
  auto bytes = records(0, 3, 1, 10);
  bytes[2 * 3073] = static_cast<char>(57);  // record 2's label
  write_bytes(tmp.path / "test_batch.bin", bytes);
  expect_error(
      [&] {
        convert_dataset(convert_options("cifar", (tmp.path / "test_batch.bin").string(),
                                        (tmp.path / "o").string()));
      },
      {"test_batch.bin' record 2 has label 57"});
  EXPECT_FALSE(fs::exists(tmp.path / "o"));
}

}  // namespace
}  // namespace scorch::testing
