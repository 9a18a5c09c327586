// Sample datasets (see generate.h).
#include "eval/generate.h"

#include <chrono>
#include <filesystem>

#include "core/config.h"
#include "core/error.h"
#include "core/sample_noise.h"
#include "data/shard_writer.h"
#include "data/source.h"

namespace scorch {

torch::Tensor to_storage(const Config& c, const torch::Tensor& samples) {
  auto x = samples.detach().to(torch::kCPU, torch::kFloat);
  if (!is_image_data(c)) return x.contiguous();
  x = inverse_scale_data(x, c.data.centered);
  // score_sde's clip(x * 255) truncated; the 1e-3 keeps a value that is k/255
  // up to float rounding (e.g. an inpainted known pixel) at k, not k - 1.
  return (x * 255 + 1e-3).clamp(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
}

ShardWriterOptions sample_writer_options(const Config& c, const std::string& what, bool overwrite) {
  const bool images = is_image_data(c);
  ShardWriterOptions w;
  w.kind = images ? SampleKind::kImages : SampleKind::kVectors;
  w.sample_shape = images ? std::vector<int64_t>{c.data.image_size, c.data.image_size,
                                                 c.data.num_channels}
                          : std::vector<int64_t>{c.data.dim};
  w.split = "samples";
  w.source = detail::concat(what, ": sde ", c.training.sde, ", model ", c.model.name,
                            ", sampler ", c.sampling.method);
  w.shard_size = 10000;
  w.overwrite = overwrite;
  return w;
}

SampleEvalResult sample_and_extract(const Config& c, const IndexedSampler& sampler,
                                    FeatureExtractor& extractor, Communicator& comm,
                                    const SampleEvalOptions& o) {
  SCORCH_CHECK(is_image_data(c), "FID, IS and KID score images; data.dataset '", c.data.dataset,
               "' is vector data");
  SCORCH_CHECK(o.num >= 2, "evaluation needs at least 2 samples, got ", o.num,
               " (50,000 is the standard)");
  SCORCH_CHECK(o.batch_size > 0, "the sampling batch size must be positive, got ", o.batch_size);
  // Checked on every rank, so that no rank is left waiting in a collective.
  SCORCH_CHECK(o.out_dir.empty() || o.overwrite || !std::filesystem::exists(o.out_dir), "--out '",
               o.out_dir, "' exists; choose a new directory or pass --overwrite");
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<ShardWriter> writer;
  if (!o.out_dir.empty() && comm.rank() == 0)
    writer = std::make_unique<ShardWriter>(
        o.out_dir, sample_writer_options(c, "scorch eval, seed " + std::to_string(o.seed) +
                                                ", per-sample noise",
                                         o.overwrite));
  SampleEvalResult result;
  ExtractOptions e;
  e.batch_size = o.batch_size;
  e.features = o.features;
  e.probabilities = o.probabilities;
  e.progress = o.progress;
  result.features = extract_images(
      o.num,
      [&](int64_t first, int64_t n) {
        const auto s0 = std::chrono::steady_clock::now();
        PerSampleNoise noise(o.seed, first, n);
        auto s = sampler(first, n);
        result.nfe = s.nfe;
        auto images = to_storage(c, s.x).permute({0, 3, 1, 2}).contiguous();
        result.sampling_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
        return images;
      },
      extractor, comm, e,
      // Every rank takes part in gathering the images; rank 0 writes them.
      o.out_dir.empty() ? RoundImagesFn{} : RoundImagesFn([&](const torch::Tensor& images) {
        if (writer) writer->add_batch(images.permute({0, 2, 3, 1}).contiguous());
      }));
  if (writer) writer->finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.extract_seconds = result.features.seconds - result.sampling_seconds;
  return result;
}

}  // namespace scorch
