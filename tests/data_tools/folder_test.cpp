// Image-folder converter: PNGs written here with stb_image_write, read back
// exactly; classes from sorted subfolders, split folders, channel conversion,
// centre crop and resize, and mixed sizes as an error.
#include <gtest/gtest.h>
#include <stb_image_write.h>

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

// Writes a w x h PNG with c channels and returns its pixels (HWC).
std::vector<uint8_t> write_png(const fs::path& path, int w, int h, int c, uint32_t seed) {
  fs::create_directories(path.parent_path());
  auto pixels = random_bytes(static_cast<size_t>(w * h * c), seed);
  EXPECT_NE(stbi_write_png(path.c_str(), w, h, c, pixels.data(), w * c), 0) << path;
  return pixels;
}

std::vector<uint8_t> concat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

TEST(FolderConvert, ClassesAreSortedSubfoldersWithExactPixels) {
  TempDir tmp("folder_classes");
  const auto in = tmp.path / "pets";
  // Written out of order: the converter sorts classes and files by name.
  const auto dog1 = write_png(in / "dog" / "b.png", 4, 3, 3, 1);
  const auto cat2 = write_png(in / "cat" / "2.png", 4, 3, 3, 2);
  const auto cat1 = write_png(in / "cat" / "1.png", 4, 3, 3, 3);
  const auto dog0 = write_png(in / "dog" / "a.PNG", 4, 3, 3, 4);
  write_bytes(in / "dog" / "notes.txt", "not an image");
  fs::create_directories(in / "emu");  // an empty class still counts
  auto o = convert_options("folder", in.string(), (tmp.path / "out").string());
  o.shard_size = 3;
  const Manifest m = convert_dataset(o);
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"cat", "dog", "emu"}));
  EXPECT_EQ(m.num_classes, 3);
  const auto d = read_dataset(tmp.path / "out");
  EXPECT_EQ(d.sample_dims, (std::vector<int64_t>{3, 4, 3}));
  EXPECT_EQ(d.shard_sizes, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(d.labels, (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(d.images, concat({cat1, cat2, dog0, dog1}));
}

TEST(FolderConvert, SplitSubfolderAndLimit) {
  TempDir tmp("folder_split");
  const auto a = write_png(tmp.path / "train" / "x" / "0.png", 2, 2, 1, 5);
  write_png(tmp.path / "train" / "y" / "0.png", 2, 2, 1, 6);
  const auto t0 = write_png(tmp.path / "test" / "x" / "0.png", 2, 2, 1, 7);
  const auto t1 = write_png(tmp.path / "test" / "x" / "1.png", 2, 2, 1, 8);
  write_png(tmp.path / "test" / "y" / "0.png", 2, 2, 1, 9);
  auto o = convert_options("folder", tmp.str(), (tmp.path / "out_test").string());
  o.split = "test";
  o.limit = 2;
  convert_dataset(o);
  auto d = read_dataset(tmp.path / "out_test");
  EXPECT_EQ(d.images, concat({t0, t1}));
  EXPECT_EQ(d.labels, (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(d.manifest["split"], "test");

  convert_dataset(convert_options("folder", tmp.str(), (tmp.path / "out_train").string()));
  d = read_dataset(tmp.path / "out_train");
  EXPECT_EQ(d.count, 2);
  EXPECT_EQ(std::vector<uint8_t>(d.images.begin(), d.images.begin() + 4), a);
}

TEST(FolderConvert, FlatFolderIsUnlabelledAndChannelsFollowTheFirstImage) {
  TempDir tmp("folder_flat");
  const auto rgb = write_png(tmp.path / "a.png", 2, 2, 3, 10);
  const auto grey = write_png(tmp.path / "b.png", 2, 2, 1, 11);
  const auto rgba = write_png(tmp.path / "c.png", 2, 2, 4, 12);
  const Manifest m =
      convert_dataset(convert_options("folder", tmp.str(), (tmp.path / "out").string()));
  EXPECT_FALSE(m.has_labels);
  EXPECT_TRUE(m.class_names.empty());
  const auto d = read_dataset(tmp.path / "out");
  EXPECT_TRUE(d.labels.empty());
  ASSERT_EQ(d.images.size(), 3u * 12);
  EXPECT_TRUE(std::equal(rgb.begin(), rgb.end(), d.images.begin()));
  for (int p = 0; p < 4; ++p)
    for (int c = 0; c < 3; ++c) {
      EXPECT_EQ(d.images[12 + p * 3 + c], grey[p]) << "grey replicated to RGB";
      EXPECT_EQ(d.images[24 + p * 3 + c], rgba[p * 4 + c]) << "alpha dropped";
    }
}

TEST(FolderConvert, MixedSizesNameTheFileAndBothSizes) {
  TempDir tmp("folder_mixed");
  write_png(tmp.path / "in" / "k" / "a.png", 4, 4, 3, 13);
  write_png(tmp.path / "in" / "k" / "b.png", 5, 3, 3, 14);
  expect_error(
      [&] {
        convert_dataset(
            convert_options("folder", (tmp.path / "in").string(), (tmp.path / "out").string()));
      },
      {"k/b.png' is 5x3", "'" + (tmp.path / "in" / "k" / "a.png").string() + "' is 4x4",
       "--image-size"});
  EXPECT_EQ(entries(tmp.path), std::vector<std::string>{"in"});
}

TEST(FolderConvert, ImageSizeCentreCropsAndResizes) {
  TempDir tmp("folder_resize");
  const auto wide = write_png(tmp.path / "in" / "0.png", 6, 4, 3, 15);  // crop x 1..4
  const auto tall = write_png(tmp.path / "in" / "1.png", 4, 8, 3, 16);  // crop y 2..5
  auto o = convert_options("folder", (tmp.path / "in").string(), (tmp.path / "crop").string());
  o.image_size = 4;  // a crop only: exact pixels
  convert_dataset(o);
  const auto d = read_dataset(tmp.path / "crop");
  EXPECT_EQ(d.sample_dims, (std::vector<int64_t>{4, 4, 3}));
  int64_t wrong = 0;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) {
        wrong += d.images[(y * 4 + x) * 3 + c] != wide[(y * 6 + x + 1) * 3 + c];
        wrong += d.images[48 + (y * 4 + x) * 3 + c] != tall[((y + 2) * 4 + x) * 3 + c];
      }
  EXPECT_EQ(wrong, 0);

  // A real resize of a flat image stays flat.
  std::vector<uint8_t> flat(10 * 7 * 3);
  for (size_t i = 0; i < flat.size(); ++i) flat[i] = static_cast<uint8_t>(40 + 50 * (i % 3));
  fs::create_directories(tmp.path / "flat");
  ASSERT_NE(stbi_write_png((tmp.path / "flat" / "f.png").c_str(), 10, 7, 3, flat.data(), 30), 0);
  o = convert_options("folder", (tmp.path / "flat").string(), (tmp.path / "small").string());
  o.image_size = 3;
  convert_dataset(o);
  const auto s = read_dataset(tmp.path / "small");
  EXPECT_EQ(s.sample_dims, (std::vector<int64_t>{3, 3, 3}));
  for (size_t i = 0; i < s.images.size(); ++i) EXPECT_NEAR(s.images[i], 40 + 50 * (i % 3), 1);
}

TEST(FolderConvert, JpegIsDecoded) {
  TempDir tmp("folder_jpeg");
  std::vector<uint8_t> smooth(16 * 16 * 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x)
      for (int c = 0; c < 3; ++c)
        smooth[(y * 16 + x) * 3 + c] = static_cast<uint8_t>(60 + 4 * x + 2 * y + 20 * c);
  ASSERT_NE(stbi_write_jpg((tmp.path / "a.jpg").c_str(), 16, 16, 3, smooth.data(), 100), 0);
  convert_dataset(convert_options("folder", tmp.str(), (tmp.path / "out").string()));
  const auto d = read_dataset(tmp.path / "out");
  ASSERT_EQ(d.sample_dims, (std::vector<int64_t>{16, 16, 3}));
  double err = 0;
  for (size_t i = 0; i < smooth.size(); ++i) err += std::abs(d.images[i] - smooth[i]);
  EXPECT_LT(err / smooth.size(), 3.0) << "mean absolute JPEG error";
}

TEST(FolderConvert, UndecodableImageAndEmptyFolderAreErrors) {
  TempDir tmp("folder_bad");
  write_png(tmp.path / "in" / "a.png", 2, 2, 3, 17);
  write_bytes(tmp.path / "in" / "b.png", "not a png at all");
  expect_error(
      [&] {
        convert_dataset(
            convert_options("folder", (tmp.path / "in").string(), (tmp.path / "out").string()));
      },
      {"cannot decode image", "in/b.png"});
  fs::create_directories(tmp.path / "none");
  expect_error(
      [&] {
        convert_dataset(
            convert_options("folder", (tmp.path / "none").string(), (tmp.path / "out").string()));
      },
      {"none' holds no images"});
  // A train/ folder but no test/ one: not mistaken for a class named "train".
  write_png(tmp.path / "splits" / "train" / "k" / "a.png", 2, 2, 3, 18);
  auto o = convert_options("folder", (tmp.path / "splits").string(), (tmp.path / "out").string());
  o.split = "test";
  expect_error([&] { convert_dataset(o); }, {"has a 'train' folder but no 'test' folder"});
}

}  // namespace
}  // namespace scorch::testing
