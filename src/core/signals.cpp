// The signal table behind parse_signal_list and signal_name (see signals.h).
#include "core/signals.h"

#include <algorithm>
#include <csignal>
#include <sstream>

#include "core/error.h"

namespace scorch {
namespace {

struct NamedSignal {
  const char* name;
  int number;
};
constexpr NamedSignal kSignals[] = {{"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2},
                                    {"SIGTERM", SIGTERM}, {"SIGINT", SIGINT},
                                    {"SIGHUP", SIGHUP},   {"SIGQUIT", SIGQUIT},
                                    {"SIGXCPU", SIGXCPU}};

}  // namespace

std::vector<int> parse_signal_list(const std::string& list, const std::string& key) {
  std::vector<int> out;
  std::stringstream items(list);
  std::string name;
  while (std::getline(items, name, ',')) {
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    if (name.empty()) continue;
    std::string upper = name;
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    if (upper.rfind("SIG", 0) != 0) upper = "SIG" + upper;
    const auto* it = std::find_if(std::begin(kSignals), std::end(kSignals),
                                  [&](const NamedSignal& s) { return upper == s.name; });
    if (it == std::end(kSignals)) {
      std::string known;
      for (const auto& s : kSignals) known += std::string(known.empty() ? "" : ", ") + s.name;
      fail(key + ": unknown signal '" + name + "'; use a comma-separated list of " + known);
    }
    out.push_back(it->number);
  }
  return out;
}

std::string signal_name(int sig) {
  for (const auto& s : kSignals)
    if (s.number == sig) return s.name;
  return "signal " + std::to_string(sig);
}

}  // namespace scorch
