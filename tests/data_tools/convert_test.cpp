// `scorch data convert` end to end through the binary (exit codes, messages,
// --json), and data_tools/read_shards.py reading what C++ wrote.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "testing/command.h"       // defines: run_scorch, run_command, mpirun_scorch
#include "testing/conversion.h"    // defines: convert_options, read_dataset
#include "testing/dependencies.h"  // defines: SCORCH_REQUIRE_OR_SKIP, kFashionMnistDir
#include "testing/files.h"         // defines: read_file, write_bytes, random_bytes, entries
#include "testing/temp_dir.h"      // defines: TempDir

namespace scorch::testing {
namespace {
namespace fs = std::filesystem;

// An IDX images file [n, h, w] with pixels random_bytes(n*h*w, seed), and
// its labels i % 3 beside it.
std::vector<uint8_t> write_mnist(const fs::path& dir, uint32_t n, uint32_t h, uint32_t w,
                                 uint32_t seed) {
  const auto pixels = random_bytes(size_t{n} * h * w, seed);
  auto be32 = [](std::string& s, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
      s.push_back(static_cast<char>((v >> shift) & 0xff));
  };
  std::string images, labels;
  for (uint32_t v : {0x803u, n, h, w}) be32(images, v);
  for (uint32_t v : {0x801u, n}) be32(labels, v);
  for (uint32_t i = 0; i < n; ++i) labels.push_back(static_cast<char>(i % 3));
  write_bytes(dir / "train-images-idx3-ubyte", images + as_string(pixels));
  write_bytes(dir / "train-labels-idx1-ubyte", labels);
  return pixels;
}

TEST(DataConvertCli, BadInputExitsTwoNamingTheFile) {
  TempDir tmp("cli_bad");
  write_bytes(tmp.path / "in" / "train-images-idx3-ubyte", "PK not an idx file");
  const auto r = run_scorch("data convert --from idx --input " + (tmp.path / "in").string() +
                            " --out " + (tmp.path / "out").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("in/train-images-idx3-ubyte' is not an IDX images file"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(tmp.path / "out"));

  const auto usage = run_scorch("data convert --from tiff --input " + tmp.str() + " --out x");
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  EXPECT_NE(usage.output.find("--from"), std::string::npos) << usage.output;
}

TEST(DataConvertCli, JsonResultAndSummaryLine) {
  TempDir tmp("cli_good");
  write_mnist(tmp.path / "in", 5, 4, 4, 1);
  const auto out = tmp.path / "out";
  auto r = run_scorch("data convert --from idx --input " + (tmp.path / "in").string() + " --out " +
                      out.string() + " --shard-size 2 --gzip 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.stdout_only);
  EXPECT_EQ(j["num_samples"], 5);
  EXPECT_EQ(j["num_classes"], 3);
  EXPECT_EQ(j["sample_shape"], (std::vector<int64_t>{4, 4, 1}));
  EXPECT_EQ(j["shards"].size(), 3u);
  EXPECT_EQ(j["compression"], "gzip");
  EXPECT_TRUE(j["seconds"].is_number());
  EXPECT_EQ(read_dataset(out).count, 5);

  // Existing --out: exit 2 without --overwrite; replaced with it.
  r = run_scorch("data convert --from idx --input " + (tmp.path / "in").string() + " --out " +
                 out.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  r = run_scorch("data convert --from idx --input " + (tmp.path / "in").string() + " --out " +
                 out.string() + " --overwrite --limit 3 --no-progress");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.stdout_only.find("converted 3 train samples into 1 shard: 4x4x1 uint8 images, "
                               "3 classes -> " +
                               out.string()),
            std::string::npos)
      << r.stdout_only;
  EXPECT_EQ(read_dataset(out).count, 3);
}

// The Python example reads what C++ wrote: counts, shape, classes, and the
// first image's pixel sum computed here from the input.
TEST(ReadShardsPy, ReadsAConvertedDataset) {
  const std::string python = "/usr/bin/python3";
  SCORCH_REQUIRE_OR_SKIP(std::system((python + " -c 'import h5py' 2>/dev/null").c_str()) == 0,
                         "h5py for " + python + " (Debian package python3-h5py)");
  TempDir tmp("read_shards");
  const auto pixels = write_mnist(tmp.path / "in", 7, 3, 5, 2);
  auto o = convert_options("idx", (tmp.path / "in").string(), (tmp.path / "out").string());
  o.shard_size = 3;
  data_tools::convert_dataset(o);
  int64_t first_sum = 0;
  for (int i = 0; i < 15; ++i) first_sum += pixels[i];

  const std::string script = std::string(SCORCH_SOURCE_DIR) + "/data_tools/read_shards.py";
  const std::string cmd = python + " " + script + " " + (tmp.path / "out").string() + " 2>&1";
  std::string output;
  FILE* pipe = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  ASSERT_EQ(pclose(pipe), 0) << output;
  EXPECT_NE(output.find("samples: 7 in 3 shards (sha256 ok)"), std::string::npos) << output;
  EXPECT_NE(output.find("shape: [3, 5, 1] uint8 images"), std::string::npos) << output;
  EXPECT_NE(output.find("classes: 0=3, 1=2, 2=2"), std::string::npos) << output;
  EXPECT_NE(output.find("first sample: sum " + std::to_string(first_sum) + " "), std::string::npos)
      << output << " (expected sum " << first_sum << ")";

  // A damaged shard is caught by its SHA-256.
  std::fstream f(tmp.path / "out" / "shard-00001.h5",
                 std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-1, std::ios::end);
  const char last = static_cast<char>(f.get());
  f.seekp(-1, std::ios::end);
  f.put(static_cast<char>(last ^ 0x5a));
  f.close();
  FILE* again = popen(cmd.c_str(), "r");
  output.clear();
  while ((n = fread(buf, 1, sizeof buf, again)) > 0) output.append(buf, n);
  EXPECT_NE(pclose(again), 0);
  EXPECT_NE(output.find("shard-00001.h5: sha256 mismatch"), std::string::npos) << output;
}

}  // namespace
}  // namespace scorch::testing
