// The communicator of a single process (rank 0 of a world of one), for the
// calls that take one: gather_state_dict, save_phema_snapshots.
#pragma once

#include "dist/communicator.h"

namespace scorch::testing {

inline Communicator& local_comm() {
  static const auto comm = make_local_communicator();
  return *comm;
}

}  // namespace scorch::testing
