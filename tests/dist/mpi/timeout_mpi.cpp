// A peer that never joins a collective: run under `mpirun -np 2` (CTest
// DistMpi.timeout* and Dist.gloo.timeout*, through expect_timeout.cmake) on
// the communicator of SCORCH_TEST_DIST_BACKEND (mpi when unset). Rank 1 sleeps far longer
// than the test may run; rank 0 enters the collective named by argv[1] with
// a 2 s timeout. The job must end non-zero within seconds, rank 0 naming the
// collective and dist.timeout_s on stderr. A plain main: the abort ends every
// process, so there is nothing for a test framework to report.
//   test_dist_mpi_timeout barrier|all_reduce_sum|all_reduce_sum_async|broadcast|all_gather
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/config.h"        // defines: Config
#include "dist/communicator.h"  // defines: Communicator, Work, make_communicator
#include "dist/mpi.h"           // defines: launched_by_mpi, make_mpi_context, make_mpi_communicator

int main(int argc, char** argv) {
  using namespace scorch;
  const std::string collective = argc > 1 ? argv[1] : "barrier";
  if (!launched_by_mpi()) {
    std::fprintf(stderr, "run under mpirun -np 2\n");
    return 2;
  }
  Config config;
  config.dist.device = DeviceName::kCpu;
  const DistContext ctx = make_mpi_context(config);
  const char* backend = std::getenv("SCORCH_TEST_DIST_BACKEND");
  auto comm = make_communicator(
      ctx, parse_choice<BackendName>(backend && *backend ? backend : "mpi", "dist.backend"),
      ctx.rank == 0 ? 2.0 : 600.0);
  comm->barrier();  // both ranks are up: the 2 s count only the stall
  if (ctx.rank != 0) {
    std::this_thread::sleep_for(std::chrono::seconds(300));  // stalled
    return 0;
  }
  auto t = torch::ones({1024});
  if (collective == "barrier") {
    comm->barrier();
  } else if (collective == "all_reduce_sum") {
    comm->all_reduce_sum(t);
  } else if (collective == "all_reduce_sum_async") {
    auto work = comm->all_reduce_sum_async(t);
    for (int i = 0; i < 100; ++i) comm->progress();  // never blocks
    work->wait();
  } else if (collective == "broadcast") {
    comm->broadcast(t, 1);
  } else if (collective == "all_gather") {
    comm->all_gather(t.view({1, -1}));
  } else {
    std::fprintf(stderr, "unknown collective %s\n", collective.c_str());
    return 2;
  }
  std::fprintf(stderr, "rank 0: %s completed although rank 1 never joined\n", collective.c_str());
  return 0;
}
