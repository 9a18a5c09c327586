// Config resolution for commands (see config_source.h).
#include "jobs/config_source.h"

#include <filesystem>

#include "jobs/default_config.h"  // generated from configs/toy/eight_gaussians_vp.yaml: kDefaultConfigYaml
#include "core/log.h"

namespace scorch {

const char* embedded_default_config() { return kDefaultConfigYaml; }

Config resolve_config(const std::string& config_path, const std::string& workdir,
                      const std::vector<std::string>& overrides) {
  if (!config_path.empty()) return load_config(config_path, overrides);
  const auto saved = std::filesystem::path(workdir) / "config.yaml";
  if (!workdir.empty() && std::filesystem::exists(saved)) {
    log_info("using the workdir's config ", saved.string());
    return load_config(saved.string(), overrides);
  }
  log_info("no --config given: using the embedded default (toy 2-D, 8 Gaussians, VP SDE)");
  return parse_config(kDefaultConfigYaml, "embedded default config", overrides);
}

}  // namespace scorch
