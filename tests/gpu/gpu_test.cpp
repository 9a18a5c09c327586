// test_gpu: the CUDA path against the CPU path that the rest of the suite
// checks. Every test skips without a CUDA device (a CPU build, or a machine
// with no GPU); launch/gpu_check.sh runs it where a GPU is lent.
//   - each network's forward on the GPU equals its CPU forward within float32
//     rounding (TF32 off, as dist.tf32=false);
//   - fused Adam (LibTorch 2.x) against the multi-tensor Adam on the GPU, and
//     that against the CPU;
//   - 20 bf16 training steps of a small DDPM++ with `scorch train` on cuda,
//     whose checkpoint the CPU then reads and samples from;
//   - sampling (PC and EDM) and FID/IS evaluation of generated samples on cuda;
//   - the NCCL communicator at world size 1.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/config.h"
#include "dist/c10d.h"
#include "dist/context.h"
#include "nn/model_factory.h"
#include "testing/command.h"   // defines: run_scorch
#include "testing/detector.h"  // defines: save_detector
#include "testing/local_comm.h"  // defines: local_comm
#include "testing/temp_dir.h"  // defines: TempDir
#include "train/optimizer.h"

namespace scorch::testing {
namespace {

#define SKIP_WITHOUT_CUDA()                                                       \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible"

std::string config_path(const std::string& name) {
  return std::string(SCORCH_SOURCE_DIR) + "/configs/" + name + ".yaml";
}

const std::vector<std::string> kSmall = {"data.image_size=16", "model.nf=32", "model.ch_mult=[1,2]",
                                         "model.num_res_blocks=1", "model.attn_resolutions=[8]",
                                         "model.dropout=0"};

// The CPU half runs everywhere (so the configs stay valid); the GPU half
// where there is one.
TEST(Gpu, EveryNetworkForwardMatchesTheCpu) {
  const bool have_gpu = torch::cuda::is_available();
  if (have_gpu) {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  for (const char* name : {"ve/cifar10_ncsnpp_continuous", "vp/cifar10_ddpmpp_continuous",
                           "vp/cifar10_ddpm", "vp/cifar10_adm", "toy/eight_gaussians_vp"}) {
    const bool toy = std::string(name).rfind("toy/", 0) == 0;
    std::vector<std::string> overrides = toy ? std::vector<std::string>{} : kSmall;
    if (std::string(name) == "vp/cifar10_adm") overrides.push_back("model.num_head_channels=16");
    const Config c = load_config(config_path(name), overrides);
    torch::manual_seed(0);
    ScoreNet cpu = make_score_net(c);
    torch::manual_seed(0);
    ScoreNet gpu = make_score_net(c);
    cpu->eval();
    torch::NoGradGuard no_grad;
    const auto x = toy ? torch::randn({16, 2}) : torch::rand({4, 3, 16, 16}) * 2 - 1;
    const auto t = toy ? torch::rand({16}) * 999 : torch::tensor({1.0f, 10.0f, 100.0f, 900.0f});
    const auto y_cpu = cpu->forward(x, t);
    ASSERT_TRUE(torch::isfinite(y_cpu).all().item<bool>()) << name;
    if (!have_gpu) continue;
    const torch::Device cuda(torch::kCUDA, 0);
    gpu->to(cuda);
    gpu->eval();
    const auto y_gpu = gpu->forward(x.to(cuda), t.to(cuda)).cpu();
    const double scale = y_cpu.abs().max().item<double>();
    EXPECT_LE((y_cpu - y_gpu).abs().max().item<double>(), 1e-4 * scale + 1e-6) << name;
  }
  if (!have_gpu) GTEST_SKIP() << "no CUDA device visible: CPU forwards only";
}

TEST(Gpu, FusedAdamMatchesTheMultiTensorAdam) {
  SKIP_WITHOUT_CUDA();
  const torch::Device cuda(torch::kCUDA, 0);
  for (const OptimizerName kind : {OptimizerName::kAdam, OptimizerName::kAdamW}) {
    OptimConfig c;
    c.optimizer = kind;
    c.weight_decay = 0.01;
    c.warmup = 0;
    c.lr = 1e-3;
    torch::manual_seed(0);
    std::vector<torch::Tensor> init = {torch::randn({64, 32, 3, 3}), torch::randn({64}),
                                       torch::randn({10, 10})};
    auto named = [&](const torch::Device& d) {
      torch::OrderedDict<std::string, torch::Tensor> out;
      for (size_t i = 0; i < init.size(); ++i)
        out.insert("p" + std::to_string(i), init[i].to(d).clone().requires_grad_(true));
      return out;
    };
    auto fused_params = named(cuda), foreach_params = named(cuda), cpu_params = named(torch::kCPU);
    Optimizer fused(fused_params, c, /*fused=*/true), foreach_gpu(foreach_params, c, false),
        cpu(cpu_params, c, false);
    // Steps 4 and 7 are skipped by the device-side flag (with NaN
    // gradients, as after an overflow): the fused kernel's found_inf.
    for (int s = 0; s < 10; ++s) {
      torch::manual_seed(100 + s);
      const bool skip = s == 4 || s == 7;
      for (size_t i = 0; i < init.size(); ++i) {
        auto g = torch::randn_like(init[i]);
        if (skip) g[0].fill_(NAN);
        fused_params[i].value().mutable_grad() = g.to(cuda);
        foreach_params[i].value().mutable_grad() = g.to(cuda);
        cpu_params[i].value().mutable_grad() = g.clone();
      }
      const auto flag = torch::full({}, skip ? 1.0 : 0.0, torch::kDouble);
      fused.apply(s, flag.to(cuda));
      foreach_gpu.apply(s, flag.to(cuda));
      cpu.apply(s, flag);
    }
    EXPECT_EQ(fused.gather_state_dict(local_comm()).at("p0.step").item<int64_t>(), 8) << kind;
    EXPECT_EQ(cpu.gather_state_dict(local_comm()).at("p0.step").item<int64_t>(), 8) << kind;
    for (size_t i = 0; i < init.size(); ++i) {
      const auto a = fused_params[i].value().detach().cpu();
      const auto b = foreach_params[i].value().detach().cpu();
      const auto ref = cpu_params[i].value().detach();
      EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6)) << kind << " fused vs foreach, p" << i;
      EXPECT_TRUE(torch::allclose(b, ref, 1e-5, 1e-6)) << kind << " GPU vs CPU, p" << i;
      EXPECT_FALSE(torch::equal(ref, init[i])) << "the parameters moved";
    }
  }
}

// One run shared by the tests below: 20 bf16 steps of a small DDPM++ on cuda.
struct TrainedOnGpu {
  TempDir dir{"gpu_train"};
  CommandResult result;
  TrainedOnGpu() {
    std::string args = "train --config " + config_path("vp/cifar10_ddpmpp_continuous") +
                       " --workdir " + dir.str() +
                       " data.dataset=synthetic_images data.path= training.batch_size=16 "
                       "training.n_iters=20 training.log_freq=5 training.snapshot_freq=20 "
                       "training.snapshot_num_samples=8 sampling.batch_size=8 "
                       "model.num_scales=50 precision.dtype=bf16 dist.device=cuda";
    for (const auto& o : kSmall) args += " " + o;
    result = run_scorch(args);
  }
};

TrainedOnGpu& trained() {
  static TrainedOnGpu run;
  return run;
}

TEST(Gpu, Bf16TrainingStepsRunAndTheCheckpointLoadsOnTheCpu) {
  SKIP_WITHOUT_CUDA();
  auto& run = trained();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.output;
  EXPECT_TRUE(std::filesystem::exists(run.dir.path / "checkpoints" / "checkpoint_00000020.pt"));
  // The checkpoint written on the GPU samples on the CPU.
  const auto r = run_scorch("sample --workdir " + run.dir.str() + " --num 2 --out " +
                            (run.dir.path / "cpu_samples").string() +
                            " dist.device=cpu sampling.method=edm sampling.num_steps=4");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Gpu, SamplingAndEvaluationRunOnTheGpu) {
  SKIP_WITHOUT_CUDA();
  auto& run = trained();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.output;
  for (const std::string method : {"pc", "edm"}) {
    const auto out = run.dir.path / ("gpu_" + method);
    const auto r = run_scorch("sample --workdir " + run.dir.str() + " --num 8 --out " + out.string() +
                              " dist.device=cuda sampling.method=" + method);
    EXPECT_EQ(r.exit_code, 0) << method << ": " << r.output;
  }
  const auto detector = run.dir.path / "detector.pt";
  save_detector(detector.string());
  const auto stats = run.dir.path / "ref.npz";
  auto r = run_scorch("stats --data " + (run.dir.path / "gpu_pc").string() + " --out " +
                      stats.string() + " --extractor " + detector.string() + " dist.device=cuda");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_scorch("eval --samples " + (run.dir.path / "gpu_edm").string() + " --ref " + stats.string() +
                 " --extractor " + detector.string() + " --json dist.device=cuda");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.stdout_only.find("\"fid\""), std::string::npos) << r.stdout_only;
}

TEST(Gpu, NcclCommunicatorAtWorldSizeOne) {
  SKIP_WITHOUT_CUDA();
  if (!c10d_backend_built(BackendName::kNccl)) GTEST_SKIP() << "this build has no NCCL";
  DistContext ctx;
  ctx.device = torch::Device(torch::kCUDA, 0);
  auto comm = make_c10d_communicator(BackendName::kNccl, ctx, 60);
  EXPECT_STREQ(comm->name(), "nccl");
  auto t = torch::arange(10, torch::TensorOptions().device(ctx.device).dtype(torch::kFloat));
  const auto before = t.clone();
  comm->all_reduce_sum(t);
  EXPECT_TRUE(torch::equal(t, before));
  auto work = comm->all_reduce_sum_async(t);
  work->wait();
  EXPECT_TRUE(torch::equal(t, before));
  comm->broadcast(t, 0);
  EXPECT_TRUE(torch::equal(comm->all_gather(t.view({2, 5})).view({10}), before));
  auto on_cpu = torch::ones({3}, torch::kDouble);  // staged through the GPU
  comm->all_reduce_sum(on_cpu);
  EXPECT_TRUE(torch::equal(on_cpu, torch::ones({3}, torch::kDouble)));
  comm->barrier();
}

}  // namespace
}  // namespace scorch::testing
