// Data-parallel gradient synchronisation, overlapped with backward (after
// PyTorch DDP, Li et al. VLDB 2020): trainable parameters are grouped into
// buckets of about `bucket_mb` in reverse registration order (roughly the
// order backward produces their gradients). Each parameter's .grad is a view
// of its bucket, in the parameter's layout (DDP's gradient_as_bucket_view):
// autograd accumulates into it in place, so there is one gradient set and no
// copy per parameter. A hook after each parameter's accumulation counts it
// done; when a bucket is complete, and every bucket before it has started,
// its all-reduce (the mean: NCCL's AVG, else 1/W premultiplied) starts while
// backward goes on. So buckets start in index order on every rank, which
// collectives require. Every such hook also calls Communicator::progress, so
// the all-reduces in flight advance during backward (MPI moves them only
// inside MPI calls). finish() starts what is left (a parameter that got no
// gradient contributes zeros) and waits: .grad then holds the mean gradient.
// The first backward after finish() treats the buckets as stale: its first
// hook zeroes them (one fill per bucket) before anything accumulates.
//
//   GradSync sync(model.named_parameters(), *comm, {25.0});
//   loss.backward();            // hooks start bucket all-reduces
//   sync.finish();              // .grad = mean over ranks
//
// Not thread-safe; one backward at a time. With gradient accumulation, call
// set_enabled(false) for all micro-batches but the last (gradients then
// accumulate in the buckets and nothing is communicated) and
// set_enabled(true, true) for the last: the reduction of the whole
// accumulated gradient still overlaps the last backward. reduce_accumulated()
// instead all-reduces the accumulated gradients after backward, bucket by
// bucket, without overlap. A .grad reset by someone else (an optimizer's
// zero_grad) is made the bucket view again before the next accumulation.
#pragma once

#include <torch/torch.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/device_timer.h"

namespace scorch {

struct GradSyncOptions {
  double bucket_mb = 25.0;
};

class GradSync {
 public:
  // Registers a hook on every parameter with requires_grad. `comm` must
  // outlive this object.
  GradSync(const torch::OrderedDict<std::string, torch::Tensor>& params, Communicator& comm,
           const GradSyncOptions& options = {});

  // Waits for every bucket and writes the mean gradients into .grad.
  void finish();

  // Off: nothing is communicated, so micro-batches accumulate locally.
  // `add_accumulated`: keep what earlier micro-batches accumulated (the
  // reduction covers it too); false treats it as stale.
  void set_enabled(bool enabled, bool add_accumulated = false) {
    enabled_ = enabled;
    if (enabled && !add_accumulated) stale_ = true;
  }
  // All-reduces every parameter's accumulated .grad (mean), bucket by bucket.
  void reduce_accumulated();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Bytes of all buckets: the one gradient set.
  int64_t bucket_bytes() const;
  // Parameter names of bucket b, in bucket order.
  std::vector<std::string> bucket_names(int64_t b) const;
  // The order in which buckets started in the last step (for tests: the same
  // on every rank, each once).
  const std::vector<int64_t>& last_launch_order() const { return last_launch_order_; }
  // Seconds that finish() waited for the all-reduces, summed over its calls:
  // on the CPU host seconds in finish() (the MPI and Gloo waits block the
  // host); on CUDA the time the current stream took from finish()'s start to
  // its end, measured by CUDA events (NCCL's wait() only makes the stream
  // wait, so host seconds would time the enqueueing). The CUDA figure folds
  // in the calls whose events have completed and waits for those that have
  // not: call it where the host reads the device anyway (the trainer does,
  // when it settles), not inside a step.
  double wait_seconds() const;

 private:
  struct Slot {
    std::string name;
    torch::Tensor param;
    int64_t bucket = 0, offset = 0;  // where its gradient lies in the bucket
    torch::Tensor grad_view;         // that part of the bucket, shaped as the parameter
    bool ready = false;
  };
  struct Bucket {
    torch::Tensor buffer;  // flat float32 (or the parameters' dtype)
    std::vector<int64_t> slots;
    int64_t pending = 0;
    std::unique_ptr<Work> work;
  };
  // Before autograd accumulates slot i's gradient: stale buckets zeroed,
  // .grad made its bucket view.
  void before_accumulate(int64_t slot);
  // After it has: slot i counted done.
  void after_accumulate(int64_t slot);
  void launch_ready();
  void reset();

  Communicator& comm_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  int64_t next_launch_ = 0;
  bool enabled_ = true;
  bool stale_ = true;  // the buckets hold the last step's gradients
  // Autograd's accumulation node of each parameter: the parameter holds it
  // weakly; the hook after accumulation lives on it.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<int64_t> launched_log_, last_launch_order_;
  mutable double wait_seconds_ = 0;
  mutable std::deque<DeviceTimer> unread_waits_;  // CUDA, in step order: not yet in wait_seconds_
};

}  // namespace scorch
