// Prometheus file-based service discovery (file_sd): the JSON file that tells
// a Prometheus server which endpoints to scrape. Rank 0 writes one per run
// (monitor.targets_file) listing every rank's host:port; Prometheus watches its
// targets directory (monitoring/prometheus.yml) and picks the file up.
//
//   write_scrape_targets("/etc/prometheus/targets/run7.json",
//                        {"node01:9400", "node01:9401"}, {{"job", "scorch"}, {"run", "run7"}});
//   // -> [{"targets":["node01:9400","node01:9401"],"labels":{"job":"scorch","run":"run7"}}]
#pragma once

#include <map>
#include <string>
#include <vector>

namespace scorch {

// Writes the file_sd JSON atomically (a temporary file in the same directory,
// then rename), so Prometheus never reads a half-written file. Creates the
// directory if needed. Throws scorch::Error naming monitor.targets_file and the
// path if it cannot be written.
void write_scrape_targets(const std::string& path, const std::vector<std::string>& targets,
                          const std::map<std::string, std::string>& labels);

// Removes the file (a run that ended stops being scraped); no error if absent.
void remove_scrape_targets(const std::string& path);

}  // namespace scorch
