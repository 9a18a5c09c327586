// scorch config reference | show: the config reference as Markdown (the text
// of configs/README.md), and a resolved config as YAML.
#include <iostream>

#include "cli/commands.h"
#include "jobs/config_source.h"
#include "core/error.h"

namespace scorch::cli {

void add_config_command(CLI::App& app, std::function<int()>& run) {
  struct Args {
    std::string config, workdir;
    std::vector<std::string> overrides;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("config", "Print the config reference or a resolved config");
  cmd->require_subcommand(1);
  auto* reference = cmd->add_subcommand(
      "reference", "Every config key as Markdown (configs/README.md is this output)");
  reference->callback([&run] {
    run = [] {
      std::cout << config_reference_markdown();
      return kExitOk;
    };
  });
  auto* show = cmd->add_subcommand(
      "show", "The resolved config as YAML: --config, else the workdir's, else the default");
  show->add_option("--config", args->config, "YAML config")->check(CLI::ExistingFile);
  show->add_option("--workdir", args->workdir, "a run directory with config.yaml");
  show->add_option("overrides", args->overrides, "config overrides key.path=value");
  show->callback([&run, args] {
    run = [args] {
      std::cout << to_yaml(resolve_config(args->config, args->workdir, args->overrides));
      return kExitOk;
    };
  });
}

}  // namespace scorch::cli
