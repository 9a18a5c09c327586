// Collectives over the ranks of a job: all-reduce (sum or mean), broadcast,
// all-gather and barrier, on tensors in place. Implementations: local (world
// size 1: every collective is a no-op or a copy), MPI (CPU tensors; see
// mpi.h) and c10d process groups: Gloo for CPU tensors, NCCL for CUDA
// tensors (see c10d.h).
//
//   auto comm = make_communicator(ctx, config.dist.backend, config.dist.timeout_s);
//   comm->all_reduce_mean(grad);      // every rank now holds the mean
//   comm->broadcast(param, /*root=*/0);
//
// Every rank must call the same collectives in the same order (as with MPI);
// a rank whose peers never join a collective ends the job after a timeout.
// Not thread-safe: one thread per communicator.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "core/choices.h"

namespace scorch {

struct DistContext;

// A collective in flight; wait() returns once its result is in place.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;  // "local", "mpi", "gloo", "nccl"

  // Sum over ranks, in place. REQUIRES: same shape and dtype on every rank,
  // contiguous. Reduced in the tensor's dtype (float16/bfloat16 through float32).
  virtual void all_reduce_sum(torch::Tensor& t) = 0;
  // Sum, then divide by size().
  void all_reduce_mean(torch::Tensor& t);
  // Starts an in-place sum and returns at once; `t` must stay alive and
  // untouched until wait(). Collectives complete in the order they start.
  // REQUIRES: float32/float64/int tensors (no float16/bfloat16).
  virtual std::unique_ptr<Work> all_reduce_sum_async(torch::Tensor& t) = 0;
  // The mean, started as all_reduce_sum_async is: NCCL averages in the
  // reduction itself (ReduceOp::AVG); the others multiply by 1/size() first
  // (as DDP does: a sum of large values cannot overflow where their mean
  // would not), then sum.
  virtual std::unique_ptr<Work> all_reduce_mean_async(torch::Tensor& t);
  // Root's values to every rank, in place.
  virtual void broadcast(torch::Tensor& t, int root) = 0;
  // Every rank's `t` [n, ...] concatenated in rank order: [size * n, ...].
  virtual torch::Tensor all_gather(const torch::Tensor& t) = 0;
  // The same into `out` [size * n, ...] (contiguous): MPI and NCCL write it
  // in place, with no buffer, and `t` may be out's own part (rows
  // [rank * n, (rank + 1) * n)); the others gather, then copy.
  virtual void all_gather_into(torch::Tensor& out, const torch::Tensor& t);
  virtual void barrier() = 0;
  // Lets the async collectives in flight advance, without blocking. Open MPI's
  // nonblocking collectives move only inside MPI calls, so code that computes
  // while they run (GradSync's gradient hooks) calls this now and then.
  // Default: nothing to do.
  virtual void progress() {}
};

// World size 1.
std::unique_ptr<Communicator> make_local_communicator();

// dist.backend's choice for `ctx`: auto is nccl on a CUDA device, mpi on the
// CPU; the others stand.
BackendName resolve_backend(BackendName backend, const DistContext& ctx);

// The communicator for `ctx`: local when no MPI launcher started the process,
// else resolve_backend(backend): MPI (CPU tensors) or a c10d process group.
// `timeout_s` (dist.timeout_s) bounds every collective's wait; past it the job
// is aborted (see make_mpi_communicator, make_c10d_communicator). Throws
// scorch::Error naming dist.backend when the backend cannot serve ctx.device
// or is not in this build.
std::unique_ptr<Communicator> make_communicator(const DistContext& ctx,
                                                BackendName backend = BackendName::kAuto,
                                                double timeout_s = 600);

// A CPU communicator for host values (flags, counters) beside the one
// make_communicator returns: MPI when that one is NCCL (which would stage a
// CPU tensor through the device, waiting for its queued work); null when that
// one takes CPU tensors itself, or for one rank.
std::unique_ptr<Communicator> make_host_communicator(const DistContext& ctx, BackendName backend,
                                                     double timeout_s);

}  // namespace scorch
