// Where a command's config comes from: an explicit file, else the workdir's
// saved config.yaml (a resumed run), else the embedded default (the toy
// quickstart, configs/toy/eight_gaussians_vp.yaml compiled in). Overrides
// apply last in every case.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace scorch {

Config resolve_config(const std::string& config_path, const std::string& workdir,
                      const std::vector<std::string>& overrides);

// The embedded default config's YAML text.
const char* embedded_default_config();

}  // namespace scorch
