// The workdir's log.jsonl: one JSON object per logging interval, written by
// rank 0, flushed per line so a crash loses at most the line being written.
#pragma once

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace scorch {

class RunLog {
 public:
  // Opens `path` for appending. A resumed run passes the step it resumes
  // from: lines of a later step (written after that checkpoint by the run
  // that stopped) are dropped, so the log reads as one uninterrupted run.
  // resume_step < 0: keep everything. Throws scorch::Error if unwritable.
  RunLog(const std::string& path, int64_t resume_step);

  // Appends one line and flushes.
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace scorch
