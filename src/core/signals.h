// Signal names for configuration and messages: one table of the signals a
// user may name (SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGXCPU),
// and the start-up hold of those signals.
//
//   std::vector<int> sigs = parse_signal_list("SIGUSR2, term", "preemption.signals");
//   signal_name(SIGUSR2) == "SIGUSR2"
//
// A scheduler may send a preemption signal while the ranks are still starting
// (MPI, LibTorch, the dataset). main() calls hold_signals() first, so such a
// signal is remembered instead of ending the process by its default action;
// the preemption watch of `scorch train` takes the held signal over (the run
// stops with exit 75 before its first step), and every other command calls
// release_signals(), which gives each signal its action back and delivers a
// held one now.
#pragma once

#include <signal.h>

#include <string>
#include <vector>

namespace scorch {

// A comma-separated list of names ("SIGUSR2" or "USR2", any case; empty
// entries ignored) as signal numbers. Throws scorch::Error naming `key` and
// the unknown name.
std::vector<int> parse_signal_list(const std::string& list, const std::string& key);

// "SIGUSR2", ... for the signals of the table, else "signal N".
std::string signal_name(int sig);

// Every signal of the table only sets a flag until release_signals().
// Call once, first thing in main(); not thread-safe.
void hold_signals();

// Ends the hold (a no-op without one): the signals get back the actions they
// had before hold_signals(). Of the signals that arrived while held, the first
// one in `keep` is returned (0 if none) for the caller to act on; any other
// is raised again, so its original action (usually the end of the process)
// happens now. Call with the signals in `keep` blocked
// (BlockedSignals) if the caller installs its own handlers for them, so that
// none is lost in between.
int release_signals(const std::vector<int>& keep = {});

// Blocks `signals` in this thread for its lifetime (pthread_sigmask); a
// signal that arrives meanwhile is delivered when the scope ends.
class BlockedSignals {
 public:
  explicit BlockedSignals(const std::vector<int>& signals);
  ~BlockedSignals();
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;

 private:
  sigset_t previous_;
};

}  // namespace scorch
