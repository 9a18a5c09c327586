// Minimal logging to stderr: rank 0 logs info; warnings and errors from any
// rank carry the rank (set once by the process context).
#pragma once

#include <string>

#include "core/error.h"

namespace scorch {

// Called once at start-up by the process context; default rank 0.
void set_log_rank(int rank);

void log_message(const char* level, const std::string& message, bool all_ranks);

template <typename... Args>
void log_info(const Args&... args) {
  log_message("info", detail::concat(args...), false);
}
template <typename... Args>
void log_warning(const Args&... args) {
  log_message("warning", detail::concat(args...), true);
}

}  // namespace scorch
