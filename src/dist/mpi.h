// MPI: the runtime (initialised once, on first use, only when the process was
// started by an MPI launcher; finalised at exit), the process context it
// gives (rank and world size from MPI_COMM_WORLD, local rank from a
// shared-memory split), and the MPI communicator for CPU tensors. No header
// names MPI: only mpi.cpp includes <mpi.h>.
#pragma once

#include <memory>
#include <string>

#include "dist/communicator.h"
#include "dist/context.h"

namespace scorch {

// True when mpirun / srun (PMI, PMIx) started this process.
bool launched_by_mpi();

// Rank, world size and local rank from MPI (initialising it if needed). On
// CUDA the rank's GPU is local_rank mod the visible GPUs, made the current
// device; throws scorch::Error when two ranks of a node would share a GPU
// (check_one_gpu_per_rank).
// REQUIRES: launched_by_mpi().
DistContext make_mpi_context(const Config& config);

// CUDA ranks need a GPU each: NCCL rejects two ranks on one GPU ("Duplicate
// GPU detected"), and ranks sharing one would split its memory. Throws
// scorch::Error (exit 2) naming `host`, the ranks on it (`local_ranks`) and
// the GPUs one rank sees (`visible_gpus`) when the ranks picked fewer than
// `local_ranks` different GPUs (`distinct_gpus`; each rank takes GPU
// local_rank mod visible_gpus, so with one rank per GPU, or one GPU made
// visible to each rank, they are all different). Pure: the decision of
// make_mpi_context.
void check_one_gpu_per_rank(int local_ranks, int visible_gpus, int distinct_gpus,
                            const std::string& host);

// A duplicate of MPI_COMM_WORLD. Every collective (and Work::wait) that has
// waited `timeout_s` seconds without completing prints the rank and the
// collective to stderr and calls MPI_Abort on MPI_COMM_WORLD, which ends the
// whole job: its peer has died or stalled (dist.timeout_s). The clock starts
// when the wait starts (for async work: at wait(), not at launch).
// REQUIRES: launched_by_mpi(), timeout_s > 0.
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s = 600);

// For an unexpected error on one rank: when MPI is running with more than one
// rank, MPI_Abort ends the whole job with `exit_code` at once (a plain exit
// would finalise MPI and wait for peers that may be blocked in a collective
// until dist.timeout_s). Otherwise returns and the caller exits as usual.
void abort_job_if_distributed(int exit_code);

}  // namespace scorch
