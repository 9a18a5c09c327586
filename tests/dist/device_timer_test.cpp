// DeviceTimer and GradSync::wait_seconds on the CPU: host clocks, as before
// CUDA events (their CUDA path runs in tests/gpu/): a timer brackets the
// work, and GradSync's wait figure is the host time finish() spent waiting.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "dist/communicator.h"
#include "dist/device_timer.h"
#include "dist/grad_sync.h"

namespace scorch {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kNap = std::chrono::milliseconds(30);

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

TEST(DeviceTimer, NeverStartedOrStoppedIsZero) {
  DeviceTimer none;
  none.stop();
  EXPECT_TRUE(none.done());
  EXPECT_EQ(none.seconds(), 0.0);
  DeviceTimer running(torch::kCPU);
  EXPECT_EQ(running.seconds(), 0.0);
}

TEST(DeviceTimer, CpuTimesTheHostBetweenStartAndStop) {
  const auto t0 = Clock::now();
  DeviceTimer timer(torch::kCPU);
  std::this_thread::sleep_for(kNap);
  timer.stop();
  const double outer = since(t0);
  std::this_thread::sleep_for(kNap);  // after stop: not counted
  EXPECT_TRUE(timer.done());
  EXPECT_GE(timer.seconds(), 0.03);
  EXPECT_LE(timer.seconds(), outer);
  const DeviceTimer copy = timer;
  EXPECT_EQ(copy.seconds(), timer.seconds());
}

// A communicator of one rank whose all-reduces take kNap to complete.
class SlowComm : public Communicator {
 public:
  struct SlowWork : Work {
    void wait() override { std::this_thread::sleep_for(kNap); }
  };
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* name() const override { return "slow"; }
  void all_reduce_sum(torch::Tensor&) override {}
  std::unique_ptr<Work> all_reduce_sum_async(torch::Tensor&) override {
    return std::make_unique<SlowWork>();
  }
  void broadcast(torch::Tensor&, int) override {}
  torch::Tensor all_gather(const torch::Tensor& t) override { return t.clone(); }
  void barrier() override {}
};

TEST(DeviceTimer, GradSyncWaitSecondsIsTheHostWaitOnTheCpu) {
  torch::manual_seed(0);
  torch::nn::Linear net(4, 3);
  SlowComm comm;
  GradSync sync(net->named_parameters(), comm, {25.0});
  ASSERT_EQ(sync.num_buckets(), 1);
  EXPECT_EQ(sync.wait_seconds(), 0.0);
  double outer = 0;
  for (int step = 0; step < 2; ++step) {
    net->forward(torch::randn({5, 4})).sum().backward();
    const auto t0 = Clock::now();
    sync.finish();
    outer += since(t0);
  }
  EXPECT_GE(sync.wait_seconds(), 2 * 0.03);  // one bucket per step, each waited kNap
  EXPECT_LE(sync.wait_seconds(), outer);
  EXPECT_EQ(sync.wait_seconds(), sync.wait_seconds());  // reading it changes nothing
}

}  // namespace
}  // namespace scorch
