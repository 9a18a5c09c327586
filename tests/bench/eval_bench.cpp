// Evaluation throughput, one table: generation samples/s of a score model
// with the config's sampler (plain batches from the default generator, and
// scorch eval's per-sample noise, whose cost is the difference), feature
// extraction images/s of the built-in classifier and, with --extractor, of
// any TorchScript extractor (e.g. inception-2015-12-05.pt), and the whole
// sample-and-extract path. FID from 50,000 x 2048 features is bench_metrics.
// The default model is score_sde's DDPM++ (VP, continuous) at nf=32 with 10
// Euler steps of the probability-flow ODE, sized for a CPU; pass the full
// config and sampler on a GPU.
//   bench_eval [--num N] [--batch B] [--extractor F] [--image-size S] [key=value ...]
#include <torch/version.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/config.h"         // defines: Config, load_config
#include "dist/communicator.h"   // defines: make_local_communicator
#include "dist/context.h"        // defines: configure_device_math
#include "eval/classifier.h"     // defines: ImageClassifier, load_classifier_extractor
#include "eval/generate.h"       // defines: sample_and_extract
#include "eval/features.h"       // defines: load_feature_extractor
#include "nn/model_factory.h"    // defines: make_score_net
#include "nn/score_net.h"        // defines: count_trainable_parameters
#include "nn/score_model.h"      // defines: make_score_fn
#include "sampling/sampler.h"    // defines: sample_from_config, sample_shape
#include "sde/sde.h"             // defines: make_sde
#include "train/checkpoint.h"    // defines: save_checkpoint

namespace {

using namespace scorch;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Images/s of `extractor` on `n` random uint8 images [n, c, s, s], in batches.
double extraction_rate(FeatureExtractor& extractor, int64_t n, int64_t batch, int64_t c, int64_t s) {
  const auto images = torch::randint(0, 256, {batch, c, s, s}).to(torch::kByte);
  extractor.features(images);  // warm-up
  const auto t0 = Clock::now();
  for (int64_t done = 0; done < n; done += batch) extractor.features(images);
  return n / seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t num = 64, batch = 16, image_size = 299;
  std::string extractor_path;
  std::string config_path = std::string(SCORCH_SOURCE_DIR) + "/configs/vp/cifar10_ddpmpp_continuous.yaml";
  std::vector<std::string> overrides = {"model.nf=32", "sampling.method=ode",
                                        "sampling.ode_method=euler", "sampling.num_steps=10"};
  std::vector<std::string> extra;
  CLI::App app{"Generation and feature extraction throughput of scorch eval"};
  app.add_option("--num", num, "samples to generate")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "samples per sampler and extractor call")->check(CLI::PositiveNumber);
  app.add_option("--config", config_path, "model config");
  app.add_option("--extractor", extractor_path, "also time this TorchScript extractor");
  app.add_option("--image-size", image_size, "image side for --extractor")->capture_default_str();
  app.add_option("overrides", extra, "config overrides (after the CPU defaults)");
  CLI11_PARSE(app, argc, argv);
  overrides.insert(overrides.end(), extra.begin(), extra.end());

  const Config c = load_config(config_path, overrides);
  const torch::Device device(torch::cuda::is_available() ? torch::kCUDA : torch::kCPU);
  configure_device_math(c, device);  // the trainer's math modes (TF32, cuDNN)
  torch::manual_seed(0);
  auto sde = make_sde(c);
  auto net = make_score_net(c);
  net->to(device);
  net->eval();
  auto shape = sample_shape(c);
  shape.insert(shape.begin(), batch);
  const auto score = make_score_fn(net, sde, c.training.continuous);
  torch::NoGradGuard no_grad;

  std::string load = "unknown";
  if (std::ifstream in("/proc/loadavg"); in) std::getline(in, load);
  std::printf("scorch eval throughput: %s (%lld parameters, %lldx%lld), sampling.method=%s, "
              "%lld samples in batches of %lld, %s, %d threads, LibTorch %s; load average: %s\n\n",
              choice_name(c.model.name), static_cast<long long>(count_trainable_parameters(*net)),
              static_cast<long long>(c.data.image_size), static_cast<long long>(c.data.image_size),
              choice_name(c.sampling.method), static_cast<long long>(num),
              static_cast<long long>(batch), device.str().c_str(), torch::get_num_threads(),
              TORCH_VERSION, load.c_str());
  std::printf("%-58s %12s\n", "stage", "per second");

  // Generation from the default generator, whole batches.
  sample_from_config(c, *sde, score, shape, torch::TensorOptions().device(device));  // warm-up
  auto t0 = Clock::now();
  int64_t nfe = 0;
  for (int64_t done = 0; done < num; done += batch)
    nfe = sample_from_config(c, *sde, score, shape, torch::TensorOptions().device(device)).nfe;
  const double plain = num / seconds_since(t0);
  std::printf("%-58s %12.2f  samples (NFE %lld)\n", "generation, default generator", plain,
              static_cast<long long>(nfe));

  // The built-in classifier, saved and loaded as scorch eval would.
  const auto clf_path = std::filesystem::temp_directory_path() / "bench_eval_classifier.pt";
  {
    ImageClassifier clf(10);
    CheckpointData ckpt;
    for (const auto& p : clf->named_parameters()) ckpt.model[p.key()] = p.value().detach();
    ckpt.extra["classifier"] = std::string(kClassifierArchitecture);
    ckpt.extra["classes"] = int64_t{10};
    save_checkpoint(clf_path.string(), ckpt);
  }
  auto classifier = load_feature_extractor(clf_path.string(), device);
  std::printf("%-58s %12.0f  images\n", "extraction, built-in classifier (28x28x1), batch 500",
              extraction_rate(*classifier, 20000, 500, 1, 28));
  if (!extractor_path.empty()) {
    auto ts = load_feature_extractor(extractor_path, device);
    const std::string label = "extraction, " + std::filesystem::path(extractor_path).filename().string() +
                              " (" + std::to_string(image_size) + "px RGB), batch " + std::to_string(batch);
    std::printf("%-58s %12.1f  images\n", label.c_str(),
                extraction_rate(*ts, std::max<int64_t>(num, 4 * batch), batch, 3, image_size));
  }

  // scorch eval's path: per-sample noise, storage quantisation, extraction.
  auto comm = make_local_communicator();
  SampleEvalOptions o;
  o.num = num;
  o.batch_size = batch;
  o.progress = false;
  const auto r = sample_and_extract(
      c, [&](int64_t, int64_t n) {
        auto s = shape;
        s[0] = n;
        return sample_from_config(c, *sde, score, s, torch::TensorOptions().device(device));
      },
      *classifier, *comm, o);
  const double per_sample = num / r.sampling_seconds;
  std::printf("%-58s %12.2f  samples (%+.1f%% time per sample vs the default generator)\n",
              "generation, per-sample noise (scorch eval)", per_sample,
              100 * (plain / per_sample - 1));
  std::printf("%-58s %12.2f  samples\n", "sample + quantise + extract + gather, end to end",
              num / r.seconds);
  std::filesystem::remove(clf_path);
  return 0;
}
