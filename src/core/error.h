// Scorch's one error type for problems a user can cause (config, data,
// checkpoint, flags), and the check macros behind it. Only main() turns an
// error into an exit code (README.md "Exit codes": 0 done, 2 bad input, 75 preempted, 1 other).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace scorch {

// Exit codes pinned by README.md ("Exit codes").
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,
  kExitBadInput = 2,
  kExitPreempted = 75,
};

// A problem the user can fix: the message names the file, key or value and
// says what would be right. main() maps it to kExitBadInput.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Training stopped on a preemption signal after a complete snapshot: main()
// maps it to kExitPreempted.
class Preempted : public std::runtime_error {
 public:
  explicit Preempted(const std::string& what) : std::runtime_error(what) {}
};

// A run that cannot go on through no fault of its input (e.g. training
// diverged): main() prints the message and maps it to kExitFailure.
class RunFailure : public std::runtime_error {
 public:
  explicit RunFailure(const std::string& what) : std::runtime_error(what) {}
};

// Throws scorch::Error with `message`. Every user-facing check ends here.
[[noreturn]] void fail(const std::string& message);

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace scorch

// SCORCH_CHECK(cond, "key x: ", value, " must be > 0") throws scorch::Error.
#define SCORCH_CHECK(cond, ...)                                         \
  do {                                                                  \
    if (!(cond)) ::scorch::fail(::scorch::detail::concat(__VA_ARGS__)); \
  } while (0)
