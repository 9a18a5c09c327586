// Communicators over LibTorch's c10d process groups, the engine of PyTorch's
// own DDP: Gloo (CPU tensors; Debian's LibTorch with libgloo-dev) and NCCL
// (CUDA tensors; a CUDA LibTorch). MPI stays the launcher and the bootstrap:
// rank 0 starts a c10d::TCPStore on a free port of its host (reached at
// MASTER_ADDR when set, else at its host name) and broadcasts "host:port"
// over MPI; every rank then joins the process group through the
// store. Both groups have the same calls, so the NCCL path differs from the
// Gloo path that the CPU tests run only in the line that constructs it.
//
//   auto comm = make_c10d_communicator(BackendName::kGloo, ctx, /*timeout_s=*/600);
//
// `timeout_s` (dist.timeout_s) is the process group's timeout. Gloo: a
// collective that fails (a peer died: its connection closed) or does not
// complete within it prints the rank and the collective to stderr and ends
// the whole job through MPI_Abort, as the MPI communicator does. NCCL: wait()
// does not block the host (it makes the current stream wait), so the host
// never sees a timeout; NCCL's watchdog thread does: past timeout_s it logs
// "[Rank R] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=N,
// OpType=ALLREDUCE, ...) ran for T milliseconds before timing out" and ends
// the process with SIGABRT (TORCH_NCCL_ASYNC_ERROR_HANDLING, set to 3 here
// unless the user set it), and mpirun ends the other ranks. An NCCL error
// reported when a collective is enqueued prints the rank and the collective
// and ends the job through MPI_Abort. The NCCL group is bound to ctx.device
// and connects at construction. Destroying the communicator shuts the group
// down (NCCL: finishes the queued collectives and destroys its
// communicators), or aborts it while an exception unwinds. No header names
// c10d: only c10d.cpp includes it.
#pragma once

#include <memory>

#include "core/choices.h"
#include "dist/communicator.h"

namespace scorch {

struct DistContext;

// True when this build has the backend: gloo with gloo's headers from
// LibTorch's source (SCORCH_C10D_GLOO: Debian's libgloo-dev), nccl with a
// CUDA LibTorch and NCCL (SCORCH_C10D_NCCL); see CMakeLists.txt.
bool c10d_backend_built(BackendName backend);

// REQUIRES: backend is kGloo or kNccl, timeout_s > 0, and launched_by_mpi()
// unless ctx.world_size == 1.
// Throws scorch::Error naming dist.backend when this build lacks the backend,
// or (nccl) when ctx.device is not a CUDA device.
std::unique_ptr<Communicator> make_c10d_communicator(BackendName backend, const DistContext& ctx,
                                                     double timeout_s);

}  // namespace scorch
