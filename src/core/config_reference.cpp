// The config reference for people: one line per key for `scorch train
// --help`, and the Markdown page configs/README.md (`scorch config
// reference`), both from the key table (config_keys).
#include <sstream>
#include <string>

#include "core/config.h"

namespace scorch {
namespace {

// Markdown table cells: pipes escaped, no line breaks.
std::string cell(const std::string& text) {
  std::string out;
  for (char ch : text) out += ch == '|' ? std::string("\\|") : std::string(1, ch);
  return out;
}

}  // namespace

std::string config_reference() {
  std::ostringstream out;
  for (const auto& k : config_keys())
    out << "  " << k.path << " (" << k.type << ", default " << k.default_value << "): " << k.help
        << "\n";
  return out.str();
}

std::string config_reference_markdown() {
  std::ostringstream out;
  out << "# Config reference\n\n"
         "Every key of a Scorch run config: its type, default, allowed values and meaning.\n"
         "This page is generated from the key table in `src/core/config_table.cpp` by\n"
         "`scorch config reference > configs/README.md`; a test fails when the two differ.\n\n"
         "A config is a YAML file of sections (`data:`, `model:`, ...); any key can also be\n"
         "set on the command line as `section.key=value` (`training.batch_size=64`,\n"
         "`model.ch_mult=[1,2,2]`). Unknown keys, values of the wrong type and values out of\n"
         "range are errors (exit 2) that name the key. Names follow score_sde's configs where\n"
         "a key exists there. The resolved config of a run is written to\n"
         "`<workdir>/config.yaml`. The configs of this folder are listed in the top-level\n"
         "README.\n";
  std::string section = "-";
  for (const auto& k : config_keys()) {
    const auto dot = k.path.find('.');
    const std::string s = dot == std::string::npos ? "" : k.path.substr(0, dot);
    if (s != section) {
      section = s;
      out << "\n## " << (s.empty() ? "top level" : "`" + s + "`") << "\n\n"
          << "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
    }
    out << "| `" << k.path << "` | " << k.type << " | `" << cell(k.default_value) << "` | "
        << cell(k.allowed) << " | " << cell(k.help) << " |\n";
  }
  return out.str();
}

}  // namespace scorch
