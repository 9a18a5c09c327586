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
//
// Before main() (while the dynamic loader maps LibTorch and static
// initialisers run, a fraction of a second) no handler can exist. The
// launchers (launch/mpirun.sh, launch/slurm.sbatch) therefore start each rank
// with the table's signals blocked (`env --block-signal=USR1,USR2,...`, per
// rank, because Open MPI unblocks every signal in the processes it forks): a
// blocked signal stays pending across exec, and hold_signals() unblocks the
// table's signals once its handlers are in place, so a signal sent before
// main() is held like one sent just after it. SIGINT and SIGQUIT are in the
// table too: a Ctrl-C during start-up is held and then, since it is not a
// preemption signal, raised again when the hold ends, so it still ends the
// process (only a little later) instead of being lost or counted as a
// preemption.
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

// Every signal of the table only sets a flag until release_signals(). Then
// unblocks the table's signals in the calling thread (a launcher may have
// blocked them before exec): one that was pending is held now. Call once,
// first thing in main(); not thread-safe.
void hold_signals();

// Ends the hold (a no-op without one): the signals not in `keep` get back the
// actions they had before hold_signals(). Of the signals that arrived while
// held, the first one in `keep` is returned (0 if none) for the caller to act
// on; any other is raised again, so its original action (usually the end of
// the process) happens now. The signals in `keep` keep the hold's handler
// for the caller to replace with its own, and to restore when it is done: a
// preemption signal that comes after `scorch train`'s watch has ended (the
// final checkpoint is written; MPI and LibTorch are shutting down) then only
// sets the unread flag, and the finished run exits 0 instead of dying of it.
// Call with the signals in `keep` blocked (BlockedSignals) if the caller
// installs its own handlers for them, so that none is lost in between.
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
