// The preemption watch in a child process (GoogleTest death tests): the first
// signal only sets the flag, a second one ends the process by the signal, the
// grace watchdog ends a process whose snapshot takes too long, and a signal
// held during start-up is taken over or delivered.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "core/config.h"
#include "core/error.h"
#include "core/signals.h"
#include "train/preemption.h"

namespace scorch {
namespace {

TEST(Preemption, FirstSignalOnlySetsTheFlag) {
  PreemptionWatch watch({SIGUSR2}, 0);
  EXPECT_FALSE(watch.requested());
  std::raise(SIGUSR2);
  EXPECT_TRUE(watch.requested());
  EXPECT_EQ(watch.signal(), SIGUSR2);
  EXPECT_EQ(signal_name(watch.signal()), "SIGUSR2");
}

TEST(PreemptionDeathTest, SecondSignalEndsTheProcessAtOnce) {
  EXPECT_EXIT(
      {
        PreemptionWatch watch({SIGUSR2}, 0);
        std::raise(SIGUSR2);
        std::raise(SIGUSR2);
        std::this_thread::sleep_for(std::chrono::seconds(5));
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGUSR2), "second preemption signal");
}

TEST(PreemptionDeathTest, GraceDeadlineEndsASlowSnapshotWithExitOne) {
  EXPECT_EXIT(
      {
        PreemptionWatch watch({SIGTERM}, 0.2);
        std::raise(SIGTERM);
        std::this_thread::sleep_for(std::chrono::seconds(5));  // a snapshot that never ends
        std::exit(0);
      },
      ::testing::ExitedWithCode(1), "did not finish within preemption.grace_s=0.2 s");
}

TEST(PreemptionDeathTest, FinishedSnapshotStandsTheWatchdogDown) {
  EXPECT_EXIT(
      {
        PreemptionWatch watch({SIGTERM}, 0.2);
        std::raise(SIGTERM);
        watch.done();
        std::this_thread::sleep_for(std::chrono::milliseconds(600));
        std::exit(75);
      },
      ::testing::ExitedWithCode(75), "");
}

// Start-up (core/signals.h): main() holds the signals before anything slow
// starts; the watch of `scorch train` takes a held signal over, and any other
// held signal gets its own action once released.
TEST(PreemptionDeathTest, SignalHeldDuringStartUpIsTakenOverByTheWatch) {
  EXPECT_EXIT(
      {
        hold_signals();
        std::raise(SIGUSR2);  // arrives while the process is still starting
        PreemptionWatch watch({SIGUSR2, SIGTERM}, 0);
        std::exit(watch.requested() && watch.signal() == SIGUSR2 ? 75 : 1);
      },
      ::testing::ExitedWithCode(75), "");
}

TEST(PreemptionDeathTest, HeldSignalTheWatchDoesNotTakeEndsTheProcess) {
  EXPECT_EXIT(
      {
        hold_signals();
        std::raise(SIGUSR1);
        PreemptionWatch watch({SIGUSR2}, 0);  // not SIGUSR1: its default action, now
        std::this_thread::sleep_for(std::chrono::seconds(5));
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGUSR1), "");
}

TEST(PreemptionDeathTest, ReleaseDeliversAHeldSignalToOtherCommands) {
  EXPECT_EXIT(
      {
        hold_signals();
        std::raise(SIGTERM);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // still alive: held
        release_signals();
        std::this_thread::sleep_for(std::chrono::seconds(5));
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGTERM), "");
}

TEST(PreemptionDeathTest, WithoutAHeldSignalReleaseChangesNothing) {
  EXPECT_EXIT(
      {
        hold_signals();
        release_signals();
        struct sigaction now {};
        sigaction(SIGUSR2, nullptr, &now);
        std::exit(now.sa_handler == SIG_DFL ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(Preemption, HandlersAreRestoredAfterTheWatch) {
  struct sigaction before {};
  sigaction(SIGUSR1, nullptr, &before);
  { PreemptionWatch watch({SIGUSR1}, 0); }
  struct sigaction after {};
  sigaction(SIGUSR1, nullptr, &after);
  EXPECT_EQ(before.sa_handler, after.sa_handler);
}

TEST(Preemption, SignalNamesParseAndUnknownOnesAreErrors) {
  Config c;
  c.preemption.signals = "SIGUSR2, term,USR1";
  EXPECT_EQ(preemption_signal_numbers(c), (std::vector<int>{SIGUSR2, SIGTERM, SIGUSR1}));
  c.preemption.signals = "";
  EXPECT_TRUE(preemption_signal_numbers(c).empty());
  c.preemption.signals = "SIGUSR2,SIGKILLME";
  EXPECT_THROW(preemption_signal_numbers(c), Error);
}

}  // namespace
}  // namespace scorch
