// Runs a command line, or the scorch binary (alone or under mpirun), and
// captures its exit code and output, stdout apart from stderr.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
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

// The tests check CPU results (bitwise resumes, closed forms): on a machine
// with a GPU, dist.device=auto would move them to it. The commands that take
// config overrides get dist.device=cpu unless `args` name a device.
inline std::string on_cpu(const std::string& args) {
  const std::string command = args.substr(0, args.find(' '));
  for (const char* c :
       {"train", "sample", "eval", "stats", "likelihood", "ood", "score-plot", "phema"}) {
    if (command == c && args.find("dist.device=") == std::string::npos) return args + " dist.device=cpu";
  }
  return args;
}

// Runs `args` after the scorch binary (on the CPU: on_cpu).
inline CommandResult run_scorch(const std::string& args) {
  return run_command(std::string(SCORCH_BINARY) + " " + on_cpu(args));
}

// The dist.backend that multi-rank tests run on: SCORCH_TEST_DIST_BACKEND
// (CTest registers each multi-rank suite once per backend), else mpi.
inline std::string test_dist_backend() {
  const char* b = std::getenv("SCORCH_TEST_DIST_BACKEND");
  return b && *b ? b : "mpi";
}

#ifdef SCORCH_MPIRUN
// The scorch binary under `mpirun --oversubscribe -np N` (and
// --allow-run-as-root when the tests run as root) running `args`, on
// test_dist_backend() unless `args` names a dist.backend itself.
inline std::string mpirun_scorch_command(int ranks, const std::string& args) {
  std::string line = std::string(SCORCH_MPIRUN) + " -np " + std::to_string(ranks) + " " +
                     SCORCH_BINARY + " " + on_cpu(args);
  if (args.find("dist.backend=") == std::string::npos) line += " dist.backend=" + test_dist_backend();
  return line;
}
inline CommandResult mpirun_scorch(int ranks, const std::string& args) {
  return run_command(mpirun_scorch_command(ranks, args));
}
#endif

}  // namespace scorch::testing
