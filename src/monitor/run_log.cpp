// JSON-lines run log (see run_log.h).
#include "monitor/run_log.h"

#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace scorch {

RunLog::RunLog(const std::string& path, int64_t resume_step) : path_(path) {
  if (resume_step >= 0 && std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::ostringstream kept;
    std::string line;
    while (std::getline(in, line)) {
      auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (record.is_discarded()) continue;  // a torn last line
      if (record.contains("step") && record["step"].get<int64_t>() > resume_step) continue;
      kept << line << "\n";
    }
    in.close();
    write_file_atomic(path, kept.str());
  }
  out_.open(path, std::ios::app);
  SCORCH_CHECK(out_.good(), "cannot open run log '", path, "' for writing");
}

void RunLog::write(const nlohmann::json& record) {
  out_ << record.dump() << "\n";
  out_.flush();
}

}  // namespace scorch
