// file_sd target files (see scrape_targets.h); format from Prometheus's
// docs/guides/file-sd.md.
#include "monitor/scrape_targets.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace scorch {
namespace fs = std::filesystem;

void write_scrape_targets(const std::string& path, const std::vector<std::string>& targets,
                          const std::map<std::string, std::string>& labels) {
  nlohmann::json group = {{"targets", targets}, {"labels", labels}};
  nlohmann::json doc = nlohmann::json::array();
  doc.push_back(std::move(group));
  std::error_code ec;
  const auto dir = fs::path(path).parent_path();
  if (!dir.empty()) fs::create_directories(dir, ec);
  SCORCH_CHECK(!ec, "monitor.targets_file '", path, "': cannot create its directory: ",
               ec.message());
  // Prometheus reads *.json only, so the temporary file is never read half-written.
  try {
    write_file_atomic(path, doc.dump(2) + "\n");
  } catch (const Error& e) {
    fail(detail::concat("monitor.targets_file '", path, "': ", e.what(),
                        "; choose a writable path (e.g. in Prometheus's targets directory)"));
  }
}

void remove_scrape_targets(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

}  // namespace scorch
