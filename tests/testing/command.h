// Runs a command line, or the scorch binary (alone or under mpirun), and
// captures its exit code and output, stdout apart from stderr.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace scorch::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout + stderr
  std::string stdout_only;
};

// Runs a shell command line; stdout and stderr captured apart.
inline CommandResult run_command(const std::string& command) {
  const auto err = std::filesystem::temp_directory_path() /
                   ("scorch_stderr_" + std::to_string(::getpid()) + ".txt");
  const std::string cmd = command + " 2>" + err.string();
  CommandResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.stdout_only.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err);
  std::stringstream e;
  e << in.rdbuf();
  r.output = r.stdout_only + e.str();
  std::filesystem::remove(err);
  return r;
}

// Runs `args` after the scorch binary.
inline CommandResult run_scorch(const std::string& args) {
  return run_command(std::string(SCORCH_BINARY) + " " + args);
}

#ifdef SCORCH_MPIRUN
// The scorch binary under `mpirun --oversubscribe -np N` (and
// --allow-run-as-root when the tests run as root).
inline std::string mpirun_scorch_command(int ranks) {
  return std::string(SCORCH_MPIRUN) + " -np " + std::to_string(ranks) + " " + SCORCH_BINARY;
}
inline CommandResult mpirun_scorch(int ranks, const std::string& args) {
  return run_command(mpirun_scorch_command(ranks) + " " + args);
}
#endif

}  // namespace scorch::testing
