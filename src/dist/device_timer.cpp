// Device-side timing of the step's work (see device_timer.h).
#include "dist/device_timer.h"

#ifdef SCORCH_CUDA
#include <ATen/cuda/CUDAContext.h>  // defines: at::cuda::getCurrentCUDAStream
#include <ATen/cuda/CUDAEvent.h>    // defines: at::cuda::CUDAEvent
#endif

namespace scorch {

#ifdef SCORCH_CUDA
struct DeviceTimer::Events {
  // cudaEventDefault: timing enabled (PyTorch's default flag disables it).
  at::cuda::CUDAEvent start{cudaEventDefault}, stop{cudaEventDefault};
};
#else
struct DeviceTimer::Events {};
#endif

DeviceTimer::DeviceTimer(const torch::Device& device)
    : start_(std::chrono::steady_clock::now()), started_(true) {
#ifdef SCORCH_CUDA
  if (device.is_cuda()) {
    events_ = std::make_shared<Events>();
    events_->start.record(at::cuda::getCurrentCUDAStream(device.index()));
  }
#else
  (void)device;
#endif
}

void DeviceTimer::stop() {
  if (!started_) return;
  stop_ = std::chrono::steady_clock::now();
  stopped_ = true;
#ifdef SCORCH_CUDA
  if (events_) events_->stop.record(at::cuda::getCurrentCUDAStream(events_->start.device_index()));
#endif
}

bool DeviceTimer::done() const {
#ifdef SCORCH_CUDA
  if (events_ && stopped_) return events_->stop.query();
#endif
  return true;
}

double DeviceTimer::seconds() const {
  if (!started_ || !stopped_) return 0;
#ifdef SCORCH_CUDA
  if (events_) {
    events_->stop.synchronize();  // a no-op once the work has completed
    return static_cast<double>(events_->start.elapsed_time(events_->stop)) / 1000;
  }
#endif
  return std::chrono::duration<double>(stop_ - start_).count();
}

}  // namespace scorch
