// scorch data: dataset tools. convert (data_convert_command.cpp) writes the
// sharded format; verify checks a dataset against its manifest, reporting
// every problem; inspect summarises it and writes a grid of its first images.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/image.h"
#include "data/sharded_dataset.h"

namespace scorch::cli {
namespace {

void add_verify(CLI::App& data, std::function<int()>& run) {
  struct Args {
    std::string dir;
    bool no_checksums = false, json = false, no_progress = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = data.add_subcommand(
      "verify", "Check a dataset against its manifest: files, sizes, SHA-256, HDF5 structure, "
                "dtypes, shapes, counts, labels. Lists every problem; exit 2 if any");
  cmd->add_option("dir", args->dir, "dataset directory")->required();
  cmd->add_flag("--no-checksums", args->no_checksums, "skip the SHA-256 of every shard");
  cmd->add_flag("--json", args->json, "print the result as one JSON object on stdout");
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar on stderr");
  cmd->callback([&run, args] {
    run = [args] {
      Manifest m;
      const auto t0 = std::chrono::steady_clock::now();
      DatasetCheckOptions check;
      check.checksums = !args->no_checksums;
      check.progress = !args->no_progress;
      const auto problems = check_dataset(args->dir, check, &m);
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (args->json) {
        std::cout << nlohmann::json{{"ok", problems.empty()},
                                    {"problems", problems},
                                    {"num_samples", m.num_samples},
                                    {"num_shards", m.shards.size()},
                                    {"checksums", !args->no_checksums},
                                    {"seconds", secs}}
                         .dump()
                  << std::endl;
      }
      if (!problems.empty()) {
        std::cerr << "scorch: dataset '" << args->dir << "' has " << problems.size()
                  << " problem" << (problems.size() > 1 ? "s" : "") << ":\n";
        for (const auto& p : problems) std::cerr << "  " << p << "\n";
        return static_cast<int>(kExitBadInput);
      }
      std::cerr << "dataset '" << args->dir << "' is good: " << m.num_samples << " "
                << m.describe() << " in " << m.shards.size() << " shard(s)"
                << (args->no_checksums ? " (checksums not checked)" : ", checksums match")
                << " (" << secs << " s)\n";
      return static_cast<int>(kExitOk);
    };
  });
}

void add_inspect(CLI::App& data, std::function<int()>& run) {
  struct Args {
    std::string dir, grid;
    int64_t num = 64;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = data.add_subcommand(
      "inspect", "Summarise a dataset (counts, shape, class histogram, pixel statistics) and "
                 "write a PNG grid of its first images (a scatter plot for 2-D vectors)");
  cmd->add_option("dir", args->dir, "dataset directory")->required();
  cmd->add_option("--grid", args->grid,
                  "PNG to write; default <dataset name>-preview.png in the current directory");
  cmd->add_option("--num", args->num, "images in the grid (points in the plot: 50x)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the summary as one JSON object on stdout");
  cmd->callback([&run, args] {
    run = [args] {
      namespace fs = std::filesystem;
      ShardedDataset d(args->dir, {/*checksums=*/false});
      const auto& m = d.manifest();
      // Class histogram.
      std::vector<int64_t> hist(static_cast<size_t>(m.num_classes), 0);
      if (m.has_labels)
        for (int64_t i = 0; i < d.size(); ++i) hist[d.label(i)] += 1;
      // Statistics over up to 10,000 evenly spaced samples.
      const int64_t stats_n = std::min<int64_t>(d.size(), 10000);
      std::vector<uint8_t> raw(static_cast<size_t>(d.sample_bytes()));
      torch::Tensor stats_x;
      const bool images = m.kind == SampleKind::kImages;
      const int64_t feat = images ? m.sample_shape[2] : m.sample_shape[0];
      std::vector<torch::Tensor> rows;
      for (int64_t k = 0; k < stats_n; ++k) {
        d.read(k * d.size() / stats_n, raw.data());
        auto t = images ? torch::from_blob(raw.data(), {d.sample_bytes() / feat, feat}, torch::kUInt8)
                              .to(torch::kDouble) / 255.0
                        : torch::from_blob(raw.data(), {1, feat}, torch::kFloat).to(torch::kDouble);
        rows.push_back(t);
      }
      auto all = torch::cat(rows);
      auto mean = all.mean(0), std = all.std(0);

      // Preview.
      std::string grid = args->grid;
      if (grid.empty())
        grid = fs::path(args->dir).lexically_normal().filename().string() + "-preview.png";
      if (grid == "-preview.png")
        grid = fs::path(args->dir).lexically_normal().parent_path().filename().string() +
               "-preview.png";
      if (images) {
        const int64_t n = std::min(args->num, d.size());
        const int64_t h = m.sample_shape[0], w = m.sample_shape[1], c = m.sample_shape[2];
        auto batch = torch::empty({n, h, w, c}, torch::kUInt8);
        for (int64_t i = 0; i < n; ++i) d.read(i, batch[i].data_ptr());
        write_png(grid, image_grid(batch.permute({0, 3, 1, 2}).to(torch::kFloat) / 255.0));
      } else if (feat >= 2) {
        const int64_t n = std::min(args->num * 50, d.size());
        auto pts = torch::empty({n, feat}, torch::kFloat);
        for (int64_t i = 0; i < n; ++i) d.read(i, pts[i].data_ptr());
        write_png(grid, scatter_plot(pts.narrow(1, 0, 2).contiguous()));
      }

      nlohmann::json j = to_json(m);
      j.erase("shards");
      j["num_shards"] = m.shards.size();
      int64_t bytes = 0;
      for (const auto& s : m.shards) bytes += s.bytes;
      j["bytes"] = bytes;
      j["class_counts"] = hist;
      j["mean"] = std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + feat);
      j["std"] = std::vector<double>(std.data_ptr<double>(), std.data_ptr<double>() + feat);
      j["stats_samples"] = stats_n;
      j["preview"] = (images || feat >= 2) ? grid : "";
      if (args->json) {
        std::cout << j.dump() << std::endl;
        return static_cast<int>(kExitOk);
      }
      auto& out = std::cout;
      out << "dataset      " << args->dir << " (format " << kShardFormatName << " v"
          << m.format_version << ")\n";
      out << "samples      " << m.num_samples << " " << m.describe() << ", split '" << m.split
          << "'\n";
      out << "shards       " << m.shards.size() << " of up to " << m.shard_size << " samples, "
          << bytes / 1e6 << " MB, compression " << m.compression;
      if (m.compression == "gzip") out << " level " << m.compression_level;
      out << "\nsource       " << m.source << "\ncreated      " << m.created << "\n";
      out << (images ? "pixel mean   " : "mean         ");
      for (int64_t k = 0; k < feat && k < 16; ++k) out << mean[k].item<double>() << " ";
      out << (images ? "(per channel, [0, 1])" : "") << "\n";
      out << (images ? "pixel std    " : "std          ");
      for (int64_t k = 0; k < feat && k < 16; ++k) out << std[k].item<double>() << " ";
      out << "\n";
      if (m.has_labels) {
        out << "classes      " << m.num_classes << "\n";
        for (int64_t k = 0; k < m.num_classes; ++k) {
          out << "  " << k;
          if (!m.class_names.empty()) out << " " << m.class_names[k];
          out << ": " << hist[k] << " (" << 100.0 * hist[k] / m.num_samples << "%)\n";
        }
      } else {
        out << "labels       none\n";
      }
      if (!j["preview"].get<std::string>().empty()) out << "preview      " << grid << "\n";
      return static_cast<int>(kExitOk);
    };
  });
}

}  // namespace

void add_data_command(CLI::App& app, std::function<int()>& run) {
  auto* data = app.add_subcommand("data", "Dataset tools: convert, verify, inspect");
  data->require_subcommand(1);
  add_data_convert_command(*data, run);
  add_verify(*data, run);
  add_inspect(*data, run);
}

}  // namespace scorch::cli
