// Checkpoints: exact round trip, atomic-write leftovers and truncated files
// skipped by find_latest_checkpoint, retention, model validation, and
// Python's torch.load reading the file.
#include "train/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "testing/dependencies.h"  // defines: SCORCH_REQUIRE_OR_SKIP, kFashionMnistDir

namespace scorch {
namespace {
namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("scorch_ckpt_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir() const { return dir_.string(); }
  fs::path dir_;
};

CheckpointData sample_data(int64_t step) {
  torch::manual_seed(step);
  CheckpointData d;
  d.model["net.0.weight"] = torch::randn({4, 3});
  d.model["net.0.bias"] = torch::randn({4});
  d.model["fourier.W"] = torch::randn({8});
  d.ema["0.9999"]["net.0.weight"] = torch::randn({4, 3});
  d.ema["0.9999"]["net.0.bias"] = torch::randn({4});
  d.ema["edm_500"]["net.0.weight"] = torch::randn({4, 3});
  d.ema["edm_500"]["net.0.bias"] = torch::randn({4});
  d.ema_num_updates = step;
  d.optimizer["net.0.weight.exp_avg"] = torch::randn({4, 3});
  d.optimizer["net.0.weight.exp_avg_sq"] = torch::rand({4, 3});
  d.optimizer["net.0.weight.step"] = torch::tensor(step, torch::kInt64);
  d.step = step;
  d.images_seen = step * 128;
  d.data_cursor = step * 128 + 5;
  d.config_yaml = "seed: 42\ntraining:\n  batch_size: 128\n";
  d.extra["loss_scale"] = 65536.0;
  d.extra["rng_state"] = torch::arange(10, torch::kUInt8);
  return d;
}

void expect_equal_maps(const std::map<std::string, torch::Tensor>& a,
                       const std::map<std::string, torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& item : a) {
    ASSERT_TRUE(b.count(item.first)) << item.first;
    EXPECT_EQ(item.second.scalar_type(), b.at(item.first).scalar_type()) << item.first;
    EXPECT_TRUE(torch::equal(item.second, b.at(item.first))) << item.first;
  }
}

TEST_F(CheckpointTest, PathsAndNames) {
  EXPECT_EQ(fs::path(checkpoint_path("ckpts", 1234)).filename(), "checkpoint_00001234.pt");
  EXPECT_EQ(checkpoint_step("checkpoint_00001234.pt"), 1234);
  EXPECT_EQ(checkpoint_step("checkpoint_123456789.pt"), 123456789);
  EXPECT_FALSE(checkpoint_step("checkpoint_00001234.pt.tmp"));
  EXPECT_FALSE(checkpoint_step("checkpoint_12.pt"));
  EXPECT_FALSE(checkpoint_step("checkpoint_0000x234.pt"));
}

TEST_F(CheckpointTest, RoundTripIsExact) {
  const CheckpointData saved = sample_data(7);
  const std::string path = checkpoint_path(dir(), 7);
  save_checkpoint(path, saved);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const CheckpointData loaded = load_checkpoint(path);
  expect_equal_maps(saved.model, loaded.model);
  ASSERT_EQ(loaded.ema.size(), 2u);
  for (const auto& item : saved.ema) expect_equal_maps(item.second, loaded.ema.at(item.first));
  expect_equal_maps(saved.optimizer, loaded.optimizer);
  EXPECT_EQ(loaded.step, 7);
  EXPECT_EQ(loaded.images_seen, 7 * 128);
  EXPECT_EQ(loaded.data_cursor, 7 * 128 + 5);
  EXPECT_EQ(loaded.ema_num_updates, 7);
  EXPECT_EQ(loaded.config_yaml, saved.config_yaml);
  ASSERT_EQ(loaded.extra.size(), 2u);
  EXPECT_EQ(loaded.extra.at("loss_scale").toDouble(), 65536.0);
  EXPECT_TRUE(
      torch::equal(loaded.extra.at("rng_state").toTensor(), torch::arange(10, torch::kUInt8)));
}

TEST_F(CheckpointTest, ViewsSaveOnlyTheirElements) {
  CheckpointData d;
  const torch::Tensor big = torch::arange(1000, torch::kFloat32);  // 4000 bytes
  d.model["slice"] = big.slice(0, 10, 20);                         // 40 of them
  const std::string path = checkpoint_path(dir(), 1);
  save_checkpoint(path, d);
  EXPECT_LT(fs::file_size(path), 4000u);
  EXPECT_TRUE(torch::equal(load_checkpoint(path).model.at("slice"), big.slice(0, 10, 20)));
}

TEST_F(CheckpointTest, ExtraKeysMustNotClash) {
  CheckpointData d = sample_data(1);
  d.extra["step"] = int64_t{3};
  EXPECT_THROW(save_checkpoint(checkpoint_path(dir(), 1), d), Error);
}

TEST_F(CheckpointTest, BadFilesAreErrorsNamingTheFile) {
  fs::create_directories(dir_);
  const std::string missing = (dir_ / "nope.pt").string();
  try {
    load_checkpoint(missing);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.pt"), std::string::npos) << e.what();
  }
  const std::string garbage = (dir_ / "garbage.pt").string();
  std::ofstream(garbage) << "not a zip archive";
  EXPECT_THROW(load_checkpoint(garbage), Error);

  // A valid PyTorch pickle that is not a Scorch checkpoint.
  c10::impl::GenericDict other(c10::StringType::get(), c10::AnyType::get());
  other.insert("format", std::string("something-else"));
  const auto bytes = torch::pickle_save(other);
  const std::string foreign = (dir_ / "foreign.pt").string();
  std::ofstream(foreign, std::ios::binary).write(bytes.data(), static_cast<long>(bytes.size()));
  try {
    load_checkpoint(foreign);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scorch-checkpoint"), std::string::npos) << e.what();
  }
}

void truncate_file(const std::string& path) { fs::resize_file(path, fs::file_size(path) / 2); }

TEST_F(CheckpointTest, LatestIgnoresTmpAndSkipsTruncated) {
  EXPECT_FALSE(find_latest_checkpoint(dir()));  // no directory yet
  save_checkpoint(checkpoint_path(dir(), 100), sample_data(100));
  save_checkpoint(checkpoint_path(dir(), 200), sample_data(200));
  // A crash mid-write leaves a temporary: never picked.
  save_checkpoint(checkpoint_path(dir(), 300), sample_data(300));
  fs::rename(checkpoint_path(dir(), 300), checkpoint_path(dir(), 300) + ".tmp");
  std::vector<std::string> warnings;
  EXPECT_EQ(find_latest_checkpoint(dir(), &warnings), checkpoint_path(dir(), 200));
  EXPECT_TRUE(warnings.empty());

  // The newest complete-looking file is truncated: skipped with a warning.
  truncate_file(checkpoint_path(dir(), 200));
  EXPECT_THROW(load_checkpoint(checkpoint_path(dir(), 200)), Error);
  EXPECT_EQ(find_latest_checkpoint(dir(), &warnings), checkpoint_path(dir(), 100));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("checkpoint_00000200.pt"), std::string::npos) << warnings[0];

  truncate_file(checkpoint_path(dir(), 100));
  warnings.clear();
  EXPECT_FALSE(find_latest_checkpoint(dir(), &warnings));
  EXPECT_EQ(warnings.size(), 2u);
}

TEST_F(CheckpointTest, RetentionKeepsNewestAndMultiples) {
  for (int64_t step : {1000, 2000, 3000, 4000, 5000, 6000, 7000}) {
    save_checkpoint(checkpoint_path(dir(), step), sample_data(step));
  }
  std::ofstream(checkpoint_path(dir(), 8000) + ".tmp") << "stale";
  const auto removed = prune_checkpoints(dir(), 2, 3000);
  EXPECT_EQ(removed.size(), 5u);  // 1000, 2000, 4000, 5000 and the stale .tmp
  std::vector<int64_t> left;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    auto step = checkpoint_step(entry.path().filename().string());
    ASSERT_TRUE(step) << entry.path();
    left.push_back(*step);
  }
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<int64_t>{3000, 6000, 7000}));

  prune_checkpoints(dir(), 1, 0);
  EXPECT_EQ(find_latest_checkpoint(dir()), checkpoint_path(dir(), 7000));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(CheckpointTest, ModuleStateIsValidatedAndLoaded) {
  torch::nn::Linear source(3, 4), target(3, 4), wrong(3, 5);
  const std::string path = checkpoint_path(dir(), 1);
  CheckpointData d;
  d.model = module_state(*source);
  save_checkpoint(path, d);
  const CheckpointData loaded = load_checkpoint(path);
  load_module_state(*target, loaded.model, path);
  EXPECT_TRUE(torch::equal(target->weight, source->weight));
  EXPECT_TRUE(torch::equal(target->bias, source->bias));
  try {
    load_module_state(*wrong, loaded.model, path);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("shape"), std::string::npos) << what;
  }
  auto partial = loaded.model;
  partial.erase("bias");
  EXPECT_THROW(check_module_state(*target, partial, path), Error);
  partial = loaded.model;
  partial["extra"] = torch::zeros({1});
  EXPECT_THROW(check_module_state(*target, partial, path), Error);
}

TEST_F(CheckpointTest, PythonTorchLoadReadsIt) {
  // The first python3 that imports torch (pyenv shims may hide Debian's).
  std::string python;
  for (const std::string candidate : {"python3", "/usr/bin/python3"}) {
    const std::string probe = candidate + " -c 'import torch' >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) {
      python = candidate;
      break;
    }
  }
  SCORCH_REQUIRE_OR_SKIP(!python.empty(),
                         "a python3 that imports torch (Debian package python3-torch)");
  const std::string path = checkpoint_path(dir(), 42);
  CheckpointData d = sample_data(42);
  d.model["net.0.bias"] = torch::tensor({1.5f, -2.0f, 0.25f, 4.0f});
  save_checkpoint(path, d);
  const std::string script =
      "import sys, torch\n"
      "d = torch.load(sys.argv[1])\n"
      "# PyTorch >= 2.6 loads with weights_only=True by default: no custom globals.\n"
      "# (1.13's weights_only reader has no floats, so this file has none.)\n"
      "w = torch.load(sys.argv[2], weights_only=True)\n"
      "assert w['step'] == 42 and w['ema']['edm_500']['net.0.bias'].shape == (4,)\n"
      "assert d['format'] == 'scorch-checkpoint' and d['format_version'] == 1, d['format']\n"
      "assert d['step'] == 42 and d['images_seen'] == 42 * 128 and d['data_cursor'] == 42 * 128 + "
      "5\n"
      "assert d['ema_num_updates'] == 42\n"
      "assert d['config'].startswith('seed: 42')\n"
      "assert set(d['model']) == {'net.0.weight', 'net.0.bias', 'fourier.W'}\n"
      "assert d['model']['net.0.bias'].tolist() == [1.5, -2.0, 0.25, 4.0]\n"
      "assert set(d['ema']) == {'0.9999', 'edm_500'}\n"
      "assert d['ema']['0.9999']['net.0.weight'].shape == (4, 3)\n"
      "assert d['optimizer']['net.0.weight.step'].item() == 42\n"
      "assert d['loss_scale'] == 65536.0\n"
      "print('ok')\n";
  const std::string script_path = (dir_ / "check.py").string();
  std::ofstream(script_path) << script;
  const std::string no_floats = checkpoint_path(dir(), 43);
  d.extra.erase("loss_scale");
  save_checkpoint(no_floats, d);
  const std::string command = python + " " + script_path + " " + path + " " + no_floats;
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

}  // namespace
}  // namespace scorch
