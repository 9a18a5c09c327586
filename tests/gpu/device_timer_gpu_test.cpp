// DeviceTimer on CUDA (test_gpu; skipped without a GPU): it times the work on
// the stream, not its enqueueing. A kernel that spins ~1e8 GPU cycles (tens
// of ms) returns to the host at once; the timer must see the spin.
#include <gtest/gtest.h>

#include <chrono>

#include "dist/device_timer.h"

#ifdef SCORCH_CUDA
#include <ATen/cuda/Sleep.h>  // defines: at::cuda::sleep
#endif

namespace scorch {
namespace {

TEST(GpuDeviceTimer, TimesTheStreamNotTheHost) {
#ifndef SCORCH_CUDA
  GTEST_SKIP() << "a build without CUDA";
#else
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  const torch::Device cuda(torch::kCUDA, 0);
  torch::zeros({1}, cuda);  // the context and stream exist before timing
  torch::cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  DeviceTimer timer(cuda);
  at::cuda::sleep(100'000'000);  // ~50 ms at 2 GHz
  timer.stop();
  const double host_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double device_s = timer.seconds();  // waits for the end event
  EXPECT_TRUE(timer.done());
  EXPECT_GE(device_s, 0.02);
  EXPECT_LT(host_s, device_s) << "the host waited for the kernel";
#endif
}

}  // namespace
}  // namespace scorch
