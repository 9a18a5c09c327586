// The signal table behind parse_signal_list and signal_name (see signals.h).
#include "core/signals.h"

#include <pthread.h>

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

// The hold: the first held signal, and each signal's action before the hold.
volatile std::sig_atomic_t g_held_signal = 0;
bool g_holding = false;
struct sigaction g_before_hold[std::size(kSignals)];

void on_held_signal(int sig) {
  if (g_held_signal == 0) g_held_signal = sig;
}

}  // namespace

void hold_signals() {
  if (g_holding) return;
  g_held_signal = 0;
  sigset_t table;
  sigemptyset(&table);
  for (size_t i = 0; i < std::size(kSignals); ++i) {
    struct sigaction action {};
    action.sa_handler = on_held_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(kSignals[i].number, &action, &g_before_hold[i]);
    sigaddset(&table, kSignals[i].number);
  }
  g_holding = true;
  // The launchers start each rank with these signals blocked (env
  // --block-signal), so that one sent before main() stays pending across exec
  // instead of ending the process. Now that the handlers are in place, unblock
  // them: a pending one is delivered to on_held_signal before this returns,
  // and the process (and what it starts) does not keep them blocked.
  pthread_sigmask(SIG_UNBLOCK, &table, nullptr);
}

int release_signals(const std::vector<int>& keep) {
  if (!g_holding) return 0;
  for (size_t i = 0; i < std::size(kSignals); ++i) {
    // A signal the caller keeps stays with the hold's handler (see signals.h).
    const int sig = kSignals[i].number;
    if (std::find(keep.begin(), keep.end(), sig) == keep.end())
      sigaction(sig, &g_before_hold[i], nullptr);
  }
  g_holding = false;
  const int held = g_held_signal;
  g_held_signal = 0;
  if (held == 0) return 0;
  if (std::find(keep.begin(), keep.end(), held) != keep.end()) return held;
  std::raise(held);  // its own action, as if it had arrived now
  return 0;
}

BlockedSignals::BlockedSignals(const std::vector<int>& signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : signals) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, &previous_);
}

BlockedSignals::~BlockedSignals() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }

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
