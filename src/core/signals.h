// Signal names for configuration and messages: one table of the signals a
// user may name (SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGXCPU).
//
//   std::vector<int> sigs = parse_signal_list("SIGUSR2, term", "preemption.signals");
//   signal_name(SIGUSR2) == "SIGUSR2"
#pragma once

#include <string>
#include <vector>

namespace scorch {

// A comma-separated list of names ("SIGUSR2" or "USR2", any case; empty
// entries ignored) as signal numbers. Throws scorch::Error naming `key` and
// the unknown name.
std::vector<int> parse_signal_list(const std::string& list, const std::string& key);

// "SIGUSR2", ... for the signals of the table, else "signal N".
std::string signal_name(int sig);

}  // namespace scorch
