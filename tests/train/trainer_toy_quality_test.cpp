// Quality: an MLP trained on 8 Gaussians with each SDE, and with EDM's
// preconditioning and loss, gives EMA samples close to held-out data in
// sliced Wasserstein distance (SW1).
//
// Threshold: SW1(samples, held-out) < floor + 0.25 (gaussian - floor), where
// floor = SW1 between two independent draws of the data (the best any model
// can do at this sample size) and gaussian = SW1 of a Gaussian with the
// data's mean and covariance (a model that learned only the first two
// moments). Missing one of the 8 modes moves 1/8 of the mass by ~2.2 and
// costs about 0.17 in SW1, more than the quarter-gap allowance (~0.09), so
// the test fails for a model that drops a mode or blurs the modes together.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/config.h"
#include "train/trainer.h"

namespace scorch {
namespace {

class ToyQuality : public ::testing::TestWithParam<const char*> {};

TEST_P(ToyQuality, SamplesMatchHeldOutData) {
  const std::string path = GetParam();  // under configs/
  const std::string name = path.substr(path.rfind('_') + 1);
  const auto workdir = std::filesystem::temp_directory_path() / ("scorch_quality_" + name);
  std::filesystem::remove_all(workdir);
  // The shipped config as is, with one snapshot at the end.
  Config c =
      load_config(std::string(SCORCH_SOURCE_DIR) + "/configs/" + path + ".yaml",
                  {"training.snapshot_freq=4000", "training.log_freq=1000"});
  TrainResult r = Trainer(c, workdir.string()).run();
  ASSERT_FALSE(r.quality.empty());
  const double swd = r.quality["swd"], floor = r.quality["swd_floor"],
               gaussian = r.quality["swd_gaussian"];
  std::printf("[quality] %s: swd %.4f, floor %.4f, gaussian %.4f\n", name.c_str(), swd, floor,
              gaussian);
  EXPECT_LT(swd, floor + 0.25 * (gaussian - floor)) << name;
  std::filesystem::remove_all(workdir);
}

INSTANTIATE_TEST_SUITE_P(Sdes, ToyQuality,
                         ::testing::Values("toy/eight_gaussians_vp", "toy/eight_gaussians_subvp",
                                           "toy/eight_gaussians_ve", "edm/eight_gaussians_edm"),
                         [](const auto& info) {
                           const std::string p = info.param;
                           return p.substr(p.rfind('_') + 1);
                         });

}  // namespace
}  // namespace scorch
