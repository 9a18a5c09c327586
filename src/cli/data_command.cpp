// scorch data: dataset tools. convert (data_convert_command.cpp) writes the
// sharded format; verify checks a dataset against its manifest, reporting
// every problem; inspect (data/inspect.h) summarises it and writes a grid of
// its first images.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "data/inspect.h"
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
    std::string dir;
    InspectOptions options;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = data.add_subcommand(
      "inspect", "Summarise a dataset (counts, shape, class histogram, pixel statistics) and "
                 "write a PNG grid of its first images (a scatter plot for 2-D vectors)");
  cmd->add_option("dir", args->dir, "dataset directory")->required();
  cmd->add_option("--grid", args->options.preview,
                  "PNG to write; default <dataset name>-preview.png in the current directory");
  cmd->add_option("--num", args->options.preview_samples,
                  "images in the grid (points in the plot: 50x)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the summary as one JSON object on stdout");
  cmd->callback([&run, args] {
    run = [args] {
      const DatasetSummary summary = inspect_dataset(args->dir, args->options);
      if (args->json)
        std::cout << to_json(summary).dump() << std::endl;
      else
        std::cout << summary_text(summary);
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
