// The trainer's math modes on CUDA are PyTorch's defaults unless the config
// says otherwise: TF32 convolutions on (torch.backends.cudnn.allow_tf32),
// TF32 matmuls off (torch.backends.cuda.matmul.allow_tf32), cuDNN's benchmark
// mode on; the CPU's settings are left alone. The switches are process-wide
// flags, so this runs without a GPU.
#include <gtest/gtest.h>

#include "core/config.h"
#include "dist/context.h"

namespace scorch {
namespace {

struct Flags {
  bool matmul, conv, benchmark;
};

Flags flags() {
  auto& g = at::globalContext();
  return {g.allowTF32CuBLAS(), g.allowTF32CuDNN(), g.benchmarkCuDNN()};
}

void set_flags(const Flags& f) {
  auto& g = at::globalContext();
  g.setAllowTF32CuBLAS(f.matmul);
  g.setAllowTF32CuDNN(f.conv);
  g.setBenchmarkCuDNN(f.benchmark);
}

TEST(DeviceMath, CudaGetsPyTorchsDefaultsAndTheConfigOverridesThem) {
  const Flags saved = flags();
  const torch::Device cuda(torch::kCUDA, 0);
  set_flags({true, false, false});
  configure_device_math(parse_config("{}", "test"), cuda);
  EXPECT_FALSE(flags().matmul) << "dist.tf32 defaults to off, as PyTorch's matmuls";
  EXPECT_TRUE(flags().conv) << "dist.cudnn_tf32 defaults to on, as PyTorch's cuDNN";
  EXPECT_TRUE(flags().benchmark);
  configure_device_math(parse_config("{}", "test", {"dist.tf32=true", "dist.cudnn_tf32=false",
                                                    "dist.cudnn_benchmark=false"}),
                        cuda);
  EXPECT_TRUE(flags().matmul);
  EXPECT_FALSE(flags().conv);
  EXPECT_FALSE(flags().benchmark);
  set_flags(saved);
}

TEST(DeviceMath, TheCpuChangesNothing) {
  const Flags saved = flags();
  set_flags({true, false, false});
  configure_device_math(parse_config("{}", "test"), torch::Device(torch::kCPU));
  EXPECT_TRUE(flags().matmul);
  EXPECT_FALSE(flags().conv);
  EXPECT_FALSE(flags().benchmark);
  set_flags(saved);
}

}  // namespace
}  // namespace scorch
