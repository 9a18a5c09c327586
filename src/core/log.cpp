// Logging to stderr with a timestamp, level and (off rank 0) the rank.
#include "core/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace scorch {
namespace {
int g_rank = 0;
std::mutex g_mutex;
}  // namespace

void set_log_rank(int rank) { g_rank = rank; }

void log_message(const char* level, const std::string& message, bool all_ranks) {
  if (g_rank != 0 && !all_ranks) return;
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_rank != 0)
    std::fprintf(stderr, "[%s %s rank %d] %s\n", stamp, level, g_rank, message.c_str());
  else
    std::fprintf(stderr, "[%s %s] %s\n", stamp, level, message.c_str());
  std::fflush(stderr);
}

}  // namespace scorch
