// How long a span of the training step's work took where it ran: on CUDA the
// time between two events recorded on the device's current stream (what the
// stream took, stalls on other streams included, e.g. waiting for NCCL),
// read once the work has completed; on the CPU, and in a build without CUDA,
// between two host clock readings. Host clocks on CUDA would time only the
// enqueueing of the work.
//
//   DeviceTimer t(ctx.device);  // start: now / an event on the current stream
//   ... the work ...
//   t.stop();                   // end: now / another event
//   ... later, where the host reads the device anyway (the trainer's settle) ...
//   double s = t.seconds();
//
// Copies share their events. Not thread-safe.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>

namespace scorch {

class DeviceTimer {
 public:
  DeviceTimer() = default;  // never started: seconds() is 0
  explicit DeviceTimer(const torch::Device& device);
  void stop();
  // Whether seconds() would return without waiting for the device (always
  // on the CPU).
  bool done() const;
  // Seconds from start to stop; 0 when not started or not stopped. On CUDA
  // it waits for the end event when that has not completed, so call it where
  // the host waits for the device anyway, never inside a step.
  double seconds() const;

 private:
  struct Events;                    // CUDA events (device_timer.cpp)
  std::shared_ptr<Events> events_;  // set on CUDA only
  std::chrono::steady_clock::time_point start_, stop_;
  bool started_ = false, stopped_ = false;
};

}  // namespace scorch
