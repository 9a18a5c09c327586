// scorch train: resolve the config (file, the workdir's saved one, or the
// embedded default), then run the trainer in the workdir.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "jobs/config_source.h"
#include "core/log.h"
#include "train/trainer.h"

namespace scorch::cli {

void add_train_command(CLI::App& app, std::function<int()>& run) {
  struct Args {
    std::string config, workdir = "workdir";
    std::vector<std::string> overrides;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "train", "Train a score model in a workdir (resumes if it has checkpoints)");
  cmd->add_option("--config", args->config,
                  "YAML config; default: the workdir's config.yaml, else the embedded toy default")
      ->check(CLI::ExistingFile);
  cmd->add_option("--workdir", args->workdir, "run directory (created if missing)")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the final result as one JSON object on stdout");
  cmd->add_option("overrides", args->overrides, "config overrides key.path=value");
  cmd->footer("Config keys (scorch train key.path=value):\n" + config_reference());
  cmd->callback([&run, args] {
    run = [args] {
      Config config = resolve_config(args->config, args->workdir, args->overrides);
      Trainer trainer(config, args->workdir);
      const TrainResult result = trainer.run();
      if (args->json && result.rank == 0) std::cout << to_json(result).dump() << std::endl;
      return kExitOk;
    };
  });
}

}  // namespace scorch::cli
