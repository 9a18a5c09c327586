// Signal flag, second-signal escalation and grace watchdog (see preemption.h).
#include "train/preemption.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace scorch {
namespace {

volatile std::sig_atomic_t g_signal = 0;

void on_signal(int sig) {
  if (g_signal != 0) {
    // Second signal: the default action (termination) right away.
    const char msg[] = "scorch: second preemption signal; stopping now\n";
    ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_signal = sig;
}

}  // namespace

PreemptionWatch::PreemptionWatch(std::vector<int> signals, double grace_s)
    : signals_(std::move(signals)), grace_s_(grace_s) {
  g_signal = 0;
  // A signal held since start-up (hold_signals in main) counts as the first
  // one; the signals stay blocked until this watch's handlers are in place.
  BlockedSignals blocked(signals_);
  const int held = release_signals(signals_);
  for (int sig : signals_) {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    struct sigaction old {};
    SCORCH_CHECK(sigaction(sig, &action, &old) == 0, "cannot install a handler for signal ", sig,
                 " (", strsignal(sig), "): ", std::strerror(errno));
    previous_.push_back(old);
  }
  if (held != 0) g_signal = held;
  if (grace_s_ > 0) thread_ = std::thread([this] { watchdog(); });
}

PreemptionWatch::~PreemptionWatch() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (size_t i = 0; i < previous_.size(); ++i) {
    sigaction(signals_[i], &previous_[i], nullptr);
  }
}

bool PreemptionWatch::requested() const { return g_signal != 0; }
int PreemptionWatch::signal() const { return g_signal; }

void PreemptionWatch::done() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
}

void PreemptionWatch::watchdog() {
  using clock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> lock(mutex_);
  // Poll for the flag (a handler cannot notify a condition variable).
  while (!stop_ && g_signal == 0) wake_.wait_for(lock, std::chrono::milliseconds(50));
  if (stop_) return;
  const auto deadline = clock::now() + std::chrono::duration<double>(grace_s_);
  if (wake_.wait_until(lock, deadline, [this] { return stop_; })) return;
  std::fprintf(stderr,
               "error: the preemption snapshot did not finish within preemption.grace_s=%g s of "
               "signal %d; stopping without it (the newest complete checkpoint stays valid)\n",
               grace_s_, static_cast<int>(g_signal));
  std::fflush(stderr);
  ::_exit(kExitFailure);
}

}  // namespace scorch
