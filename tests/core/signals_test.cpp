// The start-up hold of core/signals.h with signals blocked before it: the
// launchers start each rank with the table's signals blocked, so that one
// sent before main() stays pending across exec. hold_signals() must hold such
// a signal (not lose it, not die of it) and leave the signals unblocked; the
// signals a release keeps stay held. Each case runs in a child process (a
// GoogleTest death test), so the test process's handlers and mask stay as
// they are.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "core/signals.h"

namespace scorch {
namespace {

// The table of signals.cpp, as the launchers block it (env --block-signal=...).
constexpr int kTable[] = {SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGXCPU};

// Blocks every signal of the table in this (single-threaded child) process,
// as a launcher's `env --block-signal` does before exec.
void block_table() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kTable) sigaddset(&set, sig);
  sigprocmask(SIG_BLOCK, &set, nullptr);
}

// Exit codes of the child: 0 if every check passed, else which one failed.
int check_mask_clear_and_nothing_pending() {
  sigset_t mask, pending;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  sigpending(&pending);
  for (int sig : kTable) {
    if (sigismember(&mask, sig)) return 10;
    if (sigismember(&pending, sig)) return 11;
  }
  return 0;
}

TEST(SignalsDeathTest, SignalPendingWhileBlockedBeforeTheHoldIsHeldAndUnblocked) {
  EXPECT_EXIT(
      {
        block_table();
        ::kill(::getpid(), SIGUSR2);  // process-directed, like kill(1) or mpirun's forward
        hold_signals();
        if (const int failed = check_mask_clear_and_nothing_pending()) std::exit(failed);
        // Held, not lost: the preemption watch would take it over.
        std::exit(release_signals({SIGUSR2, SIGTERM}) == SIGUSR2 ? 0 : 12);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(SignalsDeathTest, WithNothingPendingTheHoldStillClearsTheBlock) {
  EXPECT_EXIT(
      {
        block_table();
        hold_signals();
        if (const int failed = check_mask_clear_and_nothing_pending()) std::exit(failed);
        if (release_signals({SIGUSR2}) != 0) std::exit(12);
        // The block does not come back with the hold's end either.
        std::exit(check_mask_clear_and_nothing_pending());
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(SignalsDeathTest, AHeldSignalNobodyTakesEndsTheProcessWhenReleased) {
  // A Ctrl-C (SIGINT) that came before main(): held, then its own action.
  EXPECT_EXIT(
      {
        block_table();
        ::kill(::getpid(), SIGINT);
        hold_signals();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // still alive: held
        release_signals({SIGUSR2, SIGTERM});
        std::this_thread::sleep_for(std::chrono::seconds(5));
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGINT), "");
}

TEST(SignalsDeathTest, SignalsOutsideTheTableKeepTheirBlock) {
  EXPECT_EXIT(
      {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGALRM);
        sigaddset(&set, SIGUSR2);
        sigprocmask(SIG_BLOCK, &set, nullptr);
        hold_signals();
        sigset_t mask;
        pthread_sigmask(SIG_BLOCK, nullptr, &mask);
        std::exit(sigismember(&mask, SIGALRM) && !sigismember(&mask, SIGUSR2) ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// The signals `scorch train` keeps stay with the hold's handler after the
// release (its watch restores that handler when it ends): a preemption signal
// during the shutdown of a finished run does not end the process. The others
// get their own actions back.
TEST(SignalsDeathTest, KeptSignalsStayHeldAfterTheRelease) {
  EXPECT_EXIT(
      {
        hold_signals();
        if (release_signals({SIGUSR2}) != 0) std::exit(12);
        std::raise(SIGUSR2);  // late: only the unread flag
        struct sigaction term {};
        sigaction(SIGTERM, nullptr, &term);
        std::exit(term.sa_handler == SIG_DFL ? 0 : 13);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace scorch
