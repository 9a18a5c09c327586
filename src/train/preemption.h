// Preemption signals (preemption.signals; SIGUSR2 and SIGTERM by default, as
// Slurm's --signal and its time limit send them). The handler only sets a
// flag; the trainer reads it at each step boundary, the ranks agree by
// all-reduce, rank 0 writes a snapshot and every rank exits 75. A second
// signal restores the signal's default action and re-raises it, so the
// process ends at once; checkpoints are written atomically, so the newest
// complete one stays valid. With grace_s > 0 a watchdog ends the process
// (exit 1) if the snapshot has not finished grace_s seconds after the first
// signal.
//
//   PreemptionWatch watch(preemption_signal_numbers(config), config.preemption.grace_s);
//   ... if (watch.requested()) { snapshot(); watch.done(); exit 75; }
#pragma once

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "core/signals.h"  // signal_name for messages

namespace scorch {

class PreemptionWatch {
 public:
  // Installs the handlers (replacing earlier ones until destruction).
  // One watch at a time per process.
  PreemptionWatch(std::vector<int> signals, double grace_s);
  ~PreemptionWatch();
  PreemptionWatch(const PreemptionWatch&) = delete;
  PreemptionWatch& operator=(const PreemptionWatch&) = delete;

  // True once one of the signals has arrived.
  bool requested() const;
  // The first signal's number, 0 if none.
  int signal() const;
  // The snapshot is complete: the grace watchdog stands down.
  void done();

 private:
  void watchdog();

  std::vector<int> signals_;
  std::vector<struct sigaction> previous_;
  double grace_s_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace scorch
