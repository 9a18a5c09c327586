// Sample datasets (see generate.h).
#include "eval/generate.h"

#include <chrono>
#include <filesystem>
#include <optional>

#include "core/config.h"
#include "core/error.h"
#include "core/image.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/sample_noise.h"
#include "data/shard_writer.h"
#include "data/source.h"

namespace scorch {

namespace {
constexpr uint64_t kGenerateStream = 0x6E4E;
}

torch::Tensor to_storage(const Config& c, const torch::Tensor& samples) {
  auto x = samples.detach().to(torch::kCPU, torch::kFloat);
  if (!is_image_data(c)) return x.contiguous();
  x = inverse_scale_data(x, c.data.centered);
  // score_sde's clip(x * 255) truncated; the 1e-3 keeps a value that is k/255
  // up to float rounding (e.g. an inpainted known pixel) at k, not k - 1.
  return (x * 255 + 1e-3).clamp(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
}

namespace {

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

}  // namespace

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

GenerateResult generate_dataset(const Config& c, const BatchSampler& sampler,
                                const GenerateOptions& o) {
  SCORCH_CHECK(o.num > 0, "--num must be positive, got ", o.num);
  SCORCH_CHECK(o.batch_size > 0, "the sampling batch size must be positive, got ", o.batch_size);
  const auto t0 = std::chrono::steady_clock::now();
  const bool images = is_image_data(c);
  ShardWriter writer(o.out_dir, sample_writer_options(c, "scorch sample, seed " +
                                                             std::to_string(o.seed),
                                                         o.overwrite));  // checks --out first

  GenerateResult result;
  torch::Tensor preview;
  std::optional<ProgressBar> bar;
  if (o.progress) bar.emplace("sampling", o.num);
  for (int64_t b = 0, done = 0; done < o.num; ++b) {
    const int64_t n = std::min(o.batch_size, o.num - done);
    seed_streams(o.seed, kGenerateStream, static_cast<uint64_t>(b));
    auto s = sampler(n);
    result.nfe = s.nfe;
    auto stored = to_storage(c, s.x);
    writer.add_batch(stored);
    if (!preview.defined()) preview = images ? stored.narrow(0, 0, std::min<int64_t>(n, 64))
                                             : stored.narrow(0, 0, std::min<int64_t>(n, 5000));
    done += n;
    if (bar) bar->add(n);
  }
  if (bar) bar->finish();
  result.manifest = writer.finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.samples_per_s = o.num / std::max(result.seconds, 1e-9);

  namespace fs = std::filesystem;
  result.grid = o.grid;
  if (result.grid.empty()) {
    const auto out = fs::path(o.out_dir).lexically_normal();
    const auto name = out.filename().empty() ? out.parent_path().filename() : out.filename();
    result.grid = (out.parent_path() / (name.string() + ".png")).string();
  }
  if (images)
    write_png(result.grid, image_grid(stored_to_unit(preview)));
  else if (c.data.dim == 2)
    write_png(result.grid, scatter_plot(preview));
  else
    result.grid.clear();
  return result;
}

}  // namespace scorch
